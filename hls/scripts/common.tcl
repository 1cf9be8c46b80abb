# Shared project setup for the Vitis HLS 2023.2 scripts (sourced, not run directly).
# Options, as "-tclargs name=value ..." or environment variables (the first found wins):
#   board=pynq-z2|ultra96   SASP_BOARD     part xc7z020clg400-1 (default) or xczu3eg-sbva484-1
#   array=8                 SASP_ARRAY     R = C (4, 8, 12, 16, 32)
#   clock=10                SASP_CLOCK_NS  clock period in ns
#   chunk=<rows>            SASP_CHUNK     on-chip activation rows (default 96 on pynq-z2, 192 on ultra96)
# Example: vitis_hls -f hls/scripts/csynth.tcl -tclargs board=ultra96 array=16 clock=5

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

set sasp_hls_dir [file dirname [file dirname [file normalize [info script]]]]
set sasp_board [sasp_opt board SASP_BOARD pynq-z2]
switch -- $sasp_board {
    pynq-z2 { set sasp_part xc7z020clg400-1;   set sasp_default_chunk 96 }
    ultra96 { set sasp_part xczu3eg-sbva484-1; set sasp_default_chunk 192 }
    default { error "unknown board '$sasp_board' (pynq-z2 or ultra96)" }
}
set sasp_array [sasp_opt array SASP_ARRAY 8]
set sasp_clock [sasp_opt clock SASP_CLOCK_NS 10]
set sasp_chunk [sasp_opt chunk SASP_CHUNK $sasp_default_chunk]
if {[lsearch -exact {4 8 12 16 32} $sasp_array] < 0} { error "array must be one of 4 8 12 16 32, got $sasp_array" }

# hls/include (the g++ C-sim stand-ins) is deliberately NOT on the include path: Vitis uses its own headers.
set sasp_cflags "-std=c++14 -DSA_R=$sasp_array -DSA_C=$sasp_array -DSA_CHUNK=$sasp_chunk"
set sasp_proj $sasp_hls_dir/build/vitis_${sasp_board}_a${sasp_array}_c${sasp_chunk}

puts "sasp_gemm: board=$sasp_board part=$sasp_part array=${sasp_array}x${sasp_array} chunk=$sasp_chunk clock=${sasp_clock}ns"
open_project -reset $sasp_proj
set_top sasp_gemm
add_files $sasp_hls_dir/src/sasp_gemm.cpp -cflags $sasp_cflags
add_files -tb $sasp_hls_dir/tb/tb_sasp_gemm.cpp -cflags "$sasp_cflags -I$sasp_hls_dir/src"
open_solution -reset sol -flow_target vivado
set_part $sasp_part
create_clock -period $sasp_clock -name default
