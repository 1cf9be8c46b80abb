# Synthesize and export the IP for Vivado IP integrator (ip_catalog):
#   vitis_hls -f hls/scripts/export_ip.tcl -tclargs board=pynq-z2 array=8 clock=10
# Output: hls/build/ip/sasp_gemm_<board>_a<array>.zip  (VLNV sasp.edge:hls:sasp_gemm:1.0)
source [file join [file dirname [file normalize [info script]]] common.tcl]
csynth_design
sasp_export_ip
exit
