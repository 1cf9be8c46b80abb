# C simulation with Vitis HLS 2023.2: vitis_hls -f hls/scripts/csim.tcl -tclargs array=8
source [file join [file dirname [file normalize [info script]]] common.tcl]
csim_design
exit
