# Build the sasp_gemm PYNQ overlay: block design, bitstream, and sasp_gemm_<A>.bit + sasp_gemm_<A>.hwh
# (same basename, as pynq.Overlay expects) in SASP_OUT_DIR.
#
#   vivado -mode batch -source overlay/scripts/build_overlay.tcl      (parameters: see config.tcl)
#
# Block design (all at the PL clock, one reset domain):
#
#   ps (PS7 / PS8) --M_AXI_GP0|HPM0_FPD--> ctrl_ic (axi_interconnect 1x2) --> axi_dma/S_AXI_LITE
#                                                                          --> sasp_gemm/s_axi_control
#   axi_dma/M_AXI_MM2S, M_AXI_S2MM --> mem_ic (axi_interconnect 2x1, 64-bit) --> ps/S_AXI_HP0[_FPD]
#   axi_dma/M_AXIS_MM2S --> sasp_gemm/in_stream ;  sasp_gemm/out_stream --> axi_dma/S_AXIS_S2MM
#   rst (proc_sys_reset) from the PS's PL reset; interrupts are not wired (the driver polls).
#
# AXI DMA: simple mode (no scatter-gather), 64-bit streams and memory maps, 256-beat bursts, no DRE
# (pynq.allocate returns page-aligned buffers), c_sg_length_width = 26 (see config.tcl for why).

set script_dir [file dirname [file normalize [info script]]]
source [file join $script_dir config.tcl]

set cfg [sasp::load_config]
set board [dict get $cfg board]
source [file join $script_dir "ps_[string map {- _} $board].tcl"]
source [file join $script_dir bd_common.tcl]

set out_dir [file normalize [dict get $cfg out_dir]]
set base [dict get $cfg basename]
set proj_dir [file join $out_dir "vivado_a[dict get $cfg array]"]
file mkdir $out_dir

puts "sasp overlay: board=$board part=[dict get $cfg part] array=[dict get $cfg array] clk=[dict get $cfg clk_mhz] MHz ip_repo=[dict get $cfg ip_repo] -> $out_dir/$base.{bit,hwh}"

create_project -force "sasp_$base" $proj_dir -part [dict get $cfg part]
# board files are optional: use the preset only when Vivado knows the board
set have_board [llength [get_board_parts -quiet [dict get $cfg board_part]]]
dict set cfg board_preset [expr {$have_board > 0}]
if {$have_board} {
    set_property board_part [dict get $cfg board_part] [current_project]
} else {
    puts "sasp overlay: board part [dict get $cfg board_part] not installed, using explicit PS settings"
}

if {[dict get $cfg ip_repo] eq ""} { error "SASP_IP_REPO is not set: run the HLS export first (make -C overlay hls)" }
set_property ip_repo_paths [list [file normalize [dict get $cfg ip_repo]]] [current_project]
update_ip_catalog
if {[llength [get_ipdefs -quiet [dict get $cfg ip_vlnv]]] == 0} {
    error "HLS IP [dict get $cfg ip_vlnv] not found under [dict get $cfg ip_repo]: run the HLS export (vitis_hls -f hls/scripts/...)"
}

set bd_name sasp_bd
create_bd_design $bd_name
set ps_pins [sasp::create_ps $cfg]
sasp::create_common $cfg $ps_pins
sasp::assign_addresses $cfg $ps_pins
validate_bd_design
save_bd_design

# wrapper, synthesis, implementation, bitstream
set bd_file [get_files "$bd_name.bd"]
generate_target all $bd_file
set wrapper [make_wrapper -files $bd_file -top]
add_files -norecurse $wrapper
set_property top "${bd_name}_wrapper" [current_fileset]
update_compile_order -fileset sources_1

launch_runs synth_1 -jobs [dict get $cfg jobs]
wait_on_run synth_1
if {[get_property PROGRESS [get_runs synth_1]] ne "100%"} { error "synthesis failed: see $proj_dir" }
launch_runs impl_1 -to_step write_bitstream -jobs [dict get $cfg jobs]
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} { error "implementation failed: see $proj_dir" }

open_run impl_1
report_utilization -file [file join $out_dir "${base}_utilization.rpt"]
report_utilization -hierarchical -file [file join $out_dir "${base}_utilization_hier.rpt"]
report_timing_summary -file [file join $out_dir "${base}_timing.rpt"]
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
if {$wns ne "" && $wns < 0} {
    error "timing not met at [dict get $cfg clk_mhz] MHz (WNS $wns ns): lower SASP_CLK_MHZ or the array size; see ${base}_timing.rpt"
}

# PYNQ needs <name>.bit and <name>.hwh side by side
set bits [glob -nocomplain [file join $proj_dir "*.runs" impl_1 "*.bit"]]
if {[llength $bits] != 1} { error "expected one bitstream in impl_1, found: $bits" }
file copy -force [lindex $bits 0] [file join $out_dir "$base.bit"]
set hwhs [glob -nocomplain [file join $proj_dir "*.gen" sources_1 bd $bd_name hw_handoff "$bd_name.hwh"] \
                           [file join $proj_dir "*.srcs" sources_1 bd $bd_name hw_handoff "$bd_name.hwh"]]
if {[llength $hwhs] < 1} { error "hardware handoff $bd_name.hwh not found under $proj_dir" }
file copy -force [lindex $hwhs 0] [file join $out_dir "$base.hwh"]
puts "sasp overlay: wrote $out_dir/$base.bit and $out_dir/$base.hwh"
