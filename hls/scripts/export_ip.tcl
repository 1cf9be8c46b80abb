# Synthesize and export the IP for Vivado IP integrator (ip_catalog):
#   vitis_hls -f hls/scripts/export_ip.tcl -tclargs board=pynq-z2 array=8 clock=10
# Output: hls/build/ip/sasp_gemm_<board>_a<array>.zip  (VLNV sasp.edge:hls:sasp_gemm:1.0)
source [file join [file dirname [file normalize [info script]]] common.tcl]
csynth_design
file mkdir $sasp_hls_dir/build/ip
export_design -format ip_catalog -rtl verilog -vendor sasp.edge -library hls -ipname sasp_gemm -version 1.0 \
    -display_name "SASP GEMM ${sasp_r}x${sasp_c}" \
    -description "int8 ${sasp_r}x${sasp_c} GEMM on block-sparse weights with an fp16 epilogue, chunk $sasp_chunk" \
    -output $sasp_hls_dir/build/ip/sasp_gemm_${sasp_board}_a${sasp_array}.zip
exit
