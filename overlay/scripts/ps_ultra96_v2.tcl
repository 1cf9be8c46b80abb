# Zynq UltraScale+ processing system for the Ultra96-V2 (xczu3eg-sbva484-1).
# Creates cell "ps" and returns a dict of the pins the common part connects to.
#
# With the Avnet board files installed (avnet.com:ultra96v2:part0:1.2) the board preset is applied
# (LPDDR4, MIO); without them the PS keeps its defaults: PYNQ's boot image configures the PS at boot,
# and pynq.Overlay takes only the PL clock and the address map from the .hwh.
# pl_clk0 = 150 MHz (the kernel clock for this board), HPM0_FPD (32-bit) for AXI-Lite control,
# S_AXI_HP0_FPD (64-bit, no width converter) for the DMA. HPM1_FPD and HPM0_LPD are disabled so that no
# master is left without a clock.

proc sasp::create_ps {cfg} {
    set clk [dict get $cfg clk_mhz]
    set ps [create_bd_cell -type ip -vlnv [ipdef zynq_ultra_ps_e] ps]
    if {[dict get $cfg board_preset]} {
        apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
    }
    set_property -dict [list \
        CONFIG.PSU__USE__M_AXI_GP0 {1} \
        CONFIG.PSU__MAXIGP0__DATA_WIDTH {32} \
        CONFIG.PSU__USE__M_AXI_GP1 {0} \
        CONFIG.PSU__USE__M_AXI_GP2 {0} \
        CONFIG.PSU__USE__S_AXI_GP2 {1} \
        CONFIG.PSU__SAXIGP2__DATA_WIDTH {64} \
        CONFIG.PSU__FPGA_PL0_ENABLE {1} \
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__SRCSEL {IOPLL} \
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clk \
        CONFIG.PSU__USE__IRQ0 {0} \
    ] $ps
    return [dict create \
        cell ps \
        clk ps/pl_clk0 \
        resetn ps/pl_resetn0 \
        ctrl_master ps/M_AXI_HPM0_FPD \
        mem_slave ps/S_AXI_HP0_FPD \
        clk_pins {ps/maxihpm0_fpd_aclk ps/saxihp0_fpd_aclk} \
        ctrl_space ps/Data \
        ctrl_base $sasp::ctrl_base_zup \
        kern_base $sasp::kern_base_zup \
    ]
}
