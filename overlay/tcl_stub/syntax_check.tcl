# TEST DOUBLE helper for CI: check that a Tcl file is syntactically complete (balanced braces, quotes,
# brackets) without running it.  tclsh syntax_check.tcl <file.tcl>
set path [lindex $argv 0]
set f [open $path]; set text [read $f]; close $f
set cmd ""
set lineno 0
set start 0
foreach line [split $text \n] {
    incr lineno
    if {$cmd eq ""} { set start $lineno }
    append cmd $line \n
    if {[info complete $cmd]} { set cmd "" }
}
if {$cmd ne ""} {
    puts stderr "$path: incomplete command starting at line $start"
    exit 1
}
exit 0
