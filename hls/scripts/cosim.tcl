# C/RTL co-simulation (runs the same testbench on the RTL; slow for large arrays):
#   vitis_hls -f hls/scripts/cosim.tcl -tclargs board=pynq-z2 array=8
source [file join [file dirname [file normalize [info script]]] common.tcl]
csynth_design
cosim_design -rtl verilog -trace_level none
exit
