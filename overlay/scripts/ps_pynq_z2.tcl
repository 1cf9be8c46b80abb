# Zynq-7000 processing system for the PYNQ-Z2 (xc7z020clg400-1).
# Creates cell "ps" and returns a dict of the pins the common part connects to.
#
# With the TUL board files installed (board part tul.com.tw:pynq-z2:part0:1.0) the board preset is applied;
# otherwise the settings that matter are given explicitly. At run time the PYNQ image's boot loader has
# already configured DDR and MIO, and pynq.Overlay only takes the PL clock (FCLK0 divisors) and the address
# map from the .hwh, so the explicit DDR/MIO values below only keep the design consistent with the board.

proc sasp::create_ps {cfg} {
    set clk [dict get $cfg clk_mhz]
    set ps [create_bd_cell -type ip -vlnv [ipdef processing_system7] ps]
    if {[dict get $cfg board_preset]} {
        apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
            -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps
    } else {
        # PYNQ-Z2: 50 MHz PS clock, APU 650 MHz, 512 MB DDR3 x16 at 525 MHz, UART0 on MIO 14..15,
        # Ethernet on MIO 16..27 (MDIO 52..53), USB0 on MIO 28..39, SD0 on MIO 40..45 (CD on MIO 47).
        set_property -dict [list \
            CONFIG.PCW_CRYSTAL_PERIPHERAL_FREQMHZ {50} \
            CONFIG.PCW_APU_PERIPHERAL_FREQMHZ {650} \
            CONFIG.PCW_UIPARAM_DDR_MEMORY_TYPE {DDR 3} \
            CONFIG.PCW_UIPARAM_DDR_PARTNO {MT41J256M16 RE-125} \
            CONFIG.PCW_UIPARAM_DDR_BUS_WIDTH {16 Bit} \
            CONFIG.PCW_UIPARAM_DDR_FREQ_MHZ {525} \
            CONFIG.PCW_PRESET_BANK0_VOLTAGE {LVCMOS 3.3V} \
            CONFIG.PCW_PRESET_BANK1_VOLTAGE {LVCMOS 1.8V} \
            CONFIG.PCW_QSPI_PERIPHERAL_ENABLE {1} \
            CONFIG.PCW_QSPI_GRP_SINGLE_SS_ENABLE {1} \
            CONFIG.PCW_UART0_PERIPHERAL_ENABLE {1} \
            CONFIG.PCW_UART0_UART0_IO {MIO 14 .. 15} \
            CONFIG.PCW_ENET0_PERIPHERAL_ENABLE {1} \
            CONFIG.PCW_ENET0_ENET0_IO {MIO 16 .. 27} \
            CONFIG.PCW_ENET0_GRP_MDIO_ENABLE {1} \
            CONFIG.PCW_ENET0_GRP_MDIO_IO {MIO 52 .. 53} \
            CONFIG.PCW_USB0_PERIPHERAL_ENABLE {1} \
            CONFIG.PCW_USB0_USB0_IO {MIO 28 .. 39} \
            CONFIG.PCW_SD0_PERIPHERAL_ENABLE {1} \
            CONFIG.PCW_SD0_SD0_IO {MIO 40 .. 45} \
            CONFIG.PCW_SD0_GRP_CD_ENABLE {1} \
            CONFIG.PCW_SD0_GRP_CD_IO {MIO 47} \
        ] $ps
        make_bd_intf_pins_external [get_bd_intf_pins ps/DDR] [get_bd_intf_pins ps/FIXED_IO]
    }
    # PL side: GP0 master for AXI-Lite control, HP0 (64-bit) slave for the DMA, FCLK0 + its reset.
    set_property -dict [list \
        CONFIG.PCW_USE_M_AXI_GP0 {1} \
        CONFIG.PCW_USE_S_AXI_HP0 {1} \
        CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
        CONFIG.PCW_EN_CLK0_PORT {1} \
        CONFIG.PCW_EN_RST0_PORT {1} \
        CONFIG.PCW_FPGA_FCLK0_ENABLE {1} \
        CONFIG.PCW_FCLK0_PERIPHERAL_CLKSRC {IO PLL} \
        CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clk \
        CONFIG.PCW_USE_FABRIC_INTERRUPT {0} \
    ] $ps
    return [dict create \
        cell ps \
        clk ps/FCLK_CLK0 \
        resetn ps/FCLK_RESET0_N \
        ctrl_master ps/M_AXI_GP0 \
        mem_slave ps/S_AXI_HP0 \
        clk_pins {ps/M_AXI_GP0_ACLK ps/S_AXI_HP0_ACLK} \
        ctrl_space ps/Data \
        ctrl_base $sasp::ctrl_base_z7 \
        kern_base $sasp::kern_base_z7 \
    ]
}
