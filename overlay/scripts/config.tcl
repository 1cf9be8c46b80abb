# Build parameters of the sasp_gemm overlay (sourced by build_overlay.tcl); the boards' part, board part and PL
# clock come from host/data/boards.json (python3 hls/scripts/board_args.py --tcl BOARD).
#
# Parameters come from the environment (the Makefile exports them) with defaults below:
#   SASP_BOARD    pynq-z2 | ultra96-v2 (or an alias of host/data/boards.json)
#   SASP_PYTHON   the Python 3 that reads host/data/boards.json (default python3)
#   SASP_ARRAY    systolic array size A (A x A), must match the HLS IP in SASP_IP_REPO
#   SASP_CLK_MHZ  PL clock driving DMA, interconnect and kernel (default: the board's)
#   SASP_IP_REPO  directory holding the exported HLS IP (component.xml below it)
#   SASP_IP_VLNV  VLNV of the HLS IP (default: the "ip" entry of hls/interface.json, sasp.edge:hls:sasp_gemm:1.0)
#   SASP_OUT_DIR  where sasp_gemm_<A>.bit / .hwh (same basename, as pynq.Overlay expects) are written
#   SASP_JOBS     parallel implementation jobs
#   SASP_PART     override the device part (e.g. xczu3eg-sbva484-1-e for an Ultra96 v1)

namespace eval sasp {
    variable script_dir [file dirname [file normalize [info script]]]
    # Largest single DMA transfer of a Whisper tiny.en GEMM is the fc1 output (M=1500, N=1536 int32 =
    # 9.2 MB) or, for small chunks, the input stream (the weight segment is re-sent per chunk: fc2 with
    # chunk 16 sends 94 x 590 KB + 2.3 MB = 57.7 MB). 2^26 - 1 bytes (64 MiB) covers both; the driver
    # splits larger GEMMs along M. The AXI DMA default (14 bits = 16 KiB) would hang the first GEMM.
    variable dma_length_width 26
    variable stream_width 64
    variable ctrl_base_z7  0x40400000
    variable kern_base_z7  0x43C00000
    variable ctrl_base_zup 0xA0000000
    variable kern_base_zup 0xA0010000

    proc env {name default} {
        if {[info exists ::env($name)] && $::env($name) ne ""} { return $::env($name) }
        return $default
    }

    # The board's settings from host/data/boards.json, their one owner (hls/scripts/board_args.py --tcl; a key
    # or an alias): a dict of key, part, board_part, clk_mhz, clock_ns and chunk.
    proc board_settings {board} {
        variable script_dir
        set script [file join [file dirname [file dirname $script_dir]] hls scripts board_args.py]
        if {[catch {exec [env SASP_PYTHON python3] $script --tcl $board} out]} { error $out }
        return $out
    }

    proc load_config {} {
        set b [board_settings [env SASP_BOARD pynq-z2]]
        set board [dict get $b key]
        set cfg [dict create \
            board     $board \
            part      [env SASP_PART [dict get $b part]] \
            board_part [dict get $b board_part] \
            array     [env SASP_ARRAY 8] \
            clk_mhz   [env SASP_CLK_MHZ [dict get $b clk_mhz]] \
            ip_repo   [env SASP_IP_REPO ""] \
            ip_vlnv   [env SASP_IP_VLNV [interface_vlnv]] \
            out_dir   [env SASP_OUT_DIR [file join build $board]] \
            jobs      [env SASP_JOBS 4] \
        ]
        if {![string is integer -strict [dict get $cfg array]] || [dict get $cfg array] < 2} {
            error "SASP_ARRAY must be an integer >= 2, got '[dict get $cfg array]'"
        }
        if {![string is double -strict [dict get $cfg clk_mhz]]} {
            error "SASP_CLK_MHZ must be a number, got '[dict get $cfg clk_mhz]'"
        }
        dict set cfg basename "sasp_gemm_[dict get $cfg array]"
        return $cfg
    }

    # VLNV of the HLS IP as hls/scripts/export_ip.tcl exports it, read from hls/interface.json (the single
    # source of truth for the kernel interface; plain regexps because tclsh/Vivado have no JSON parser).
    proc interface_vlnv {} {
        variable script_dir
        set path [file join [file dirname [file dirname $script_dir]] hls interface.json]
        if {![file exists $path]} { error "$path not found: the overlay needs the kernel's interface description" }
        set f [open $path]; set text [read $f]; close $f
        if {![regexp {"ip"\s*:\s*\{([^\}]*)\}} $text -> ip]} { error "no \"ip\" entry in $path" }
        set parts {}
        foreach key {vendor library name version} {
            if {![regexp "\"$key\"\\s*:\\s*\"(\[^\"\]+)\"" $ip -> v]} { error "no ip.$key in $path" }
            lappend parts $v
        }
        return [join $parts :]
    }

    # Newest installed version of a Xilinx IP (IP versions differ between Vivado releases).
    proc ipdef {name} {
        set defs [lsort -dictionary [get_ipdefs -all -quiet "xilinx.com:ip:${name}:*"]]
        if {[llength $defs] == 0} { error "IP xilinx.com:ip:${name} not found in the IP catalog" }
        return [lindex $defs end]
    }
}
