# C synthesis: vitis_hls -f hls/scripts/csynth.tcl -tclargs board=pynq-z2 array=8 clock=10
# Reports: hls/build/vitis_<board>_a<array>_c<chunk>/sol/syn/report/sasp_gemm_csynth.rpt
source [file join [file dirname [file normalize [info script]]] common.tcl]
csynth_design
exit
