# TEST DOUBLE for CI only: run a Vivado / Vitis HLS Tcl script under tclsh with the stub prelude.
#   tclsh overlay/tcl_stub/run_stubbed.tcl <script.tcl> [args...]
source [file join [file dirname [file normalize [info script]]] vivado_stub.tcl]
set script [lindex $argv 0]
set argv [lrange $argv 1 end]
set argc [llength $argv]
set ::argv0 $script
set rc [catch {uplevel #0 [list source $script]} msg opts]
stub::dump
if {$rc == 1} {
    puts stderr "ERROR: $msg"
    puts stderr [dict get $opts -errorinfo]
    exit 1
}
exit 0
