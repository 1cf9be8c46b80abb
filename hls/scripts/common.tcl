# Shared project setup for the Vitis HLS 2023.2 scripts (sourced, not run directly).
# Options, as "-tclargs name=value ..." or environment variables (the first found wins):
#   board=<board>               SASP_BOARD     a key or alias of host/data/boards.json (default pynq-z2)
#   part=<part>                 SASP_PART      default: the board's part
#   array=8 | RxC               SASP_ARRAY     R = C, or rectangular (R a multiple of 8, C a multiple of 4)
#   clock=<ns>                  SASP_CLOCK_NS  default: the board's PL clock period
#   chunk=<rows>                SASP_CHUNK     on-chip activation rows, SA_CHUNK (default: the board's)
# The board's defaults come from host/data/boards.json, their one owner, through hls/scripts/board_args.py (run
# with $SASP_PYTHON, default python3); with part, clock and chunk all given no Python is needed and the board
# name only labels the build folder and the IP file.
# Example: vitis_hls -f hls/scripts/csynth.tcl -tclargs board=ultra96 array=16

proc sasp_opt {name envname default} {
    global argv
    if {[info exists argv]} {
        foreach a $argv {
            if {[string match "${name}=*" $a]} { return [string range $a [expr {[string length $name] + 1}] end] }
        }
    }
    if {[info exists ::env($envname)] && $::env($envname) ne ""} { return $::env($envname) }
    return $default
}

# The board's settings as a Tcl dict (key, part, board_part, clk_mhz, clock_ns, chunk). Vitis HLS and Vivado run
# these scripts in a standard Tcl interpreter, whose exec starts an external program (UG894, "Calling External
# Programs"); exec raises an error when the program exits non-zero or writes to stderr, with that text as the
# message (Tcl exec(n)), which is how board_args.py reports an unknown board.
proc sasp_board_settings {board} {
    global sasp_hls_dir
    set python [expr {[info exists ::env(SASP_PYTHON)] && $::env(SASP_PYTHON) ne "" ? $::env(SASP_PYTHON) : "python3"}]
    if {[catch {exec $python [file join $sasp_hls_dir scripts board_args.py] --tcl $board} out]} {
        error "board '$board': its part, clock and chunk are read from host/data/boards.json by\
            '$python hls/scripts/board_args.py --tcl', which failed: $out\n\
            Pass part=, clock= and chunk= (no Python needed) or set SASP_PYTHON to a Python 3."
    }
    return $out
}

set sasp_hls_dir [file dirname [file dirname [file normalize [info script]]]]
set sasp_board [sasp_opt board SASP_BOARD pynq-z2]
set sasp_part [sasp_opt part SASP_PART ""]
set sasp_clock [sasp_opt clock SASP_CLOCK_NS ""]
set sasp_chunk [sasp_opt chunk SASP_CHUNK ""]
if {$sasp_part eq "" || $sasp_clock eq "" || $sasp_chunk eq ""} {
    set sasp_settings [sasp_board_settings $sasp_board]
    set sasp_board [dict get $sasp_settings key]
    foreach {var key} {sasp_part part sasp_clock clock_ns sasp_chunk chunk} {
        if {[set $var] eq ""} { set $var [dict get $sasp_settings $key] }
    }
}
set sasp_array [sasp_opt array SASP_ARRAY 8]
if {[regexp {^([0-9]+)(?:x([0-9]+))?$} $sasp_array -> sasp_r sasp_c] == 0} {
    error "array must be N or RxC, got $sasp_array"
}
if {$sasp_c eq ""} { set sasp_c $sasp_r }
if {$sasp_r % 8 != 0 || $sasp_r < 8 || $sasp_c % 4 != 0 || $sasp_c < 8} {
    error "array ${sasp_r}x${sasp_c}: R must be a multiple of 8 and C a multiple of 4 (both >= 8)"
}

# hls/include (the g++ C-sim stand-ins) is deliberately NOT on the include path: Vitis uses its own headers.
set sasp_cflags "-std=c++14 -DSA_R=$sasp_r -DSA_C=$sasp_c -DSA_CHUNK=$sasp_chunk"
set sasp_proj $sasp_hls_dir/build/vitis_${sasp_board}_a${sasp_array}_c${sasp_chunk}

puts "sasp_gemm: board=$sasp_board part=$sasp_part array=${sasp_r}x${sasp_c} chunk=$sasp_chunk clock=${sasp_clock}ns"
open_project -reset $sasp_proj
set_top sasp_gemm
add_files $sasp_hls_dir/src/sasp_gemm.cpp -cflags $sasp_cflags
add_files -tb $sasp_hls_dir/tb/tb_sasp_gemm.cpp -cflags "$sasp_cflags -I$sasp_hls_dir/src"
open_solution -reset sol -flow_target vivado
set_part $sasp_part
create_clock -period $sasp_clock -name default
# 32-bit AXI addresses for the weight master (UG1399 2023.1, config_interface -m_axi_addr64): the Zynq-7000 HP
# ports are 32-bit, pynq.allocate buffers lie below 4 GB on both boards, and the wmem register stays one
# 32-bit slot (hls/interface.json, hls/scripts/regmap.py).
config_interface -m_axi_addr64=false

# The IP for Vivado IP integrator (ip_catalog): hls/build/ip/sasp_gemm_<board>_a<array>.zip, VLNV
# sasp.edge:hls:sasp_gemm:1.0 (hls/interface.json "ip"). Used by export_ip.tcl and synth.tcl.
proc sasp_export_ip {} {
    global sasp_hls_dir sasp_r sasp_c sasp_chunk sasp_board sasp_array
    file mkdir $sasp_hls_dir/build/ip
    export_design -format ip_catalog -rtl verilog -vendor sasp.edge -library hls -ipname sasp_gemm -version 1.0 \
        -display_name "SASP GEMM ${sasp_r}x${sasp_c}" \
        -description "int8 ${sasp_r}x${sasp_c} GEMM on block-sparse weights with an fp16 epilogue, chunk $sasp_chunk" \
        -output $sasp_hls_dir/build/ip/sasp_gemm_${sasp_board}_a${sasp_array}.zip
}
