# The Vitis HLS check for whoever has the tools (run by `make -C hls synth BOARD=... ARRAY=...`, which passes
# part, clock and chunk from host/data/boards.json): C simulation, C synthesis, C/RTL co-simulation of the
# testbench, IP export. The Makefile then regenerates hls/interface.json from the exported driver header
# (hls/scripts/regmap.py) and fails on a loop that missed II=1 or a missed clock (hls/scripts/check_reports.py).
source [file join [file dirname [file normalize [info script]]] common.tcl]
csim_design
csynth_design
cosim_design -rtl verilog -trace_level none
sasp_export_ip
exit
