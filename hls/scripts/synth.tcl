# The Vitis HLS check for whoever has the tools (run by `make -C hls synth BOARD=... ARRAY=...`, which passes
# part, clock and chunk from host/data/boards.json): C simulation, C synthesis, C/RTL co-simulation of the
# testbench, IP export. The Makefile then regenerates hls/interface.json from the exported driver header
# (hls/scripts/regmap.py) and fails on a loop that missed II=1 or a missed clock (hls/scripts/check_reports.py).
source [file join [file dirname [file normalize [info script]]] common.tcl]
csim_design
csynth_design
cosim_design -rtl verilog -trace_level none
file mkdir $sasp_hls_dir/build/ip
export_design -format ip_catalog -rtl verilog -vendor sasp.edge -library hls -ipname sasp_gemm -version 1.0 \
    -display_name "SASP GEMM ${sasp_r}x${sasp_c}" \
    -description "int8 ${sasp_r}x${sasp_c} GEMM on block-sparse weights with an fp16 epilogue, chunk $sasp_chunk" \
    -output $sasp_hls_dir/build/ip/sasp_gemm_${sasp_board}_a${sasp_array}.zip
exit
