# PS-independent part of the sasp_gemm block design: DMA, HLS kernel, interconnects, reset, clocks.

proc sasp::create_common {cfg ps} {
    set clk [dict get $ps clk]

    # processor system reset from the PS's PL reset, clocked by the PL clock
    create_bd_cell -type ip -vlnv [ipdef proc_sys_reset] rst

    # AXI DMA, simple register mode
    set dma [create_bd_cell -type ip -vlnv [ipdef axi_dma] axi_dma]
    set w $sasp::stream_width
    set_property -dict [list \
        CONFIG.c_include_sg {0} \
        CONFIG.c_sg_length_width $sasp::dma_length_width \
        CONFIG.c_sg_include_stscntrl_strm {0} \
        CONFIG.c_include_mm2s {1} \
        CONFIG.c_include_s2mm {1} \
        CONFIG.c_addr_width {32} \
        CONFIG.c_m_axi_mm2s_data_width $w \
        CONFIG.c_m_axis_mm2s_tdata_width $w \
        CONFIG.c_m_axi_s2mm_data_width $w \
        CONFIG.c_s_axis_s2mm_tdata_width $w \
        CONFIG.c_mm2s_burst_size {256} \
        CONFIG.c_s2mm_burst_size {256} \
        CONFIG.c_include_mm2s_dre {0} \
        CONFIG.c_include_s2mm_dre {0} \
    ] $dma

    # the HLS kernel
    create_bd_cell -type ip -vlnv [dict get $cfg ip_vlnv] sasp_gemm

    # AXI-Lite control: one master (PS) to DMA registers and kernel registers
    set ctrl [create_bd_cell -type ip -vlnv [ipdef axi_interconnect] ctrl_ic]
    set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {2}] $ctrl
    # memory path: DMA read and write masters and the kernel's weight master (m_axi_gmem, reads only) to the
    # PS high-performance port
    set mem [create_bd_cell -type ip -vlnv [ipdef axi_interconnect] mem_ic]
    set_property -dict [list CONFIG.NUM_SI {3} CONFIG.NUM_MI {1}] $mem

    # AXI interface connections
    connect_bd_intf_net [get_bd_intf_pins [dict get $ps ctrl_master]] [get_bd_intf_pins ctrl_ic/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins ctrl_ic/M00_AXI] [get_bd_intf_pins axi_dma/S_AXI_LITE]
    connect_bd_intf_net [get_bd_intf_pins ctrl_ic/M01_AXI] [get_bd_intf_pins sasp_gemm/s_axi_control]
    connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXI_MM2S] [get_bd_intf_pins mem_ic/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXI_S2MM] [get_bd_intf_pins mem_ic/S01_AXI]
    connect_bd_intf_net [get_bd_intf_pins sasp_gemm/m_axi_gmem] [get_bd_intf_pins mem_ic/S02_AXI]
    connect_bd_intf_net [get_bd_intf_pins mem_ic/M00_AXI] [get_bd_intf_pins [dict get $ps mem_slave]]
    # AXI4-Stream: DMA -> kernel -> DMA
    connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXIS_MM2S] [get_bd_intf_pins sasp_gemm/in_stream]
    connect_bd_intf_net [get_bd_intf_pins sasp_gemm/out_stream] [get_bd_intf_pins axi_dma/S_AXIS_S2MM]

    # one clock for everything
    set clk_sinks [concat [dict get $ps clk_pins] {
        rst/slowest_sync_clk
        axi_dma/s_axi_lite_aclk axi_dma/m_axi_mm2s_aclk axi_dma/m_axi_s2mm_aclk
        sasp_gemm/ap_clk
        ctrl_ic/ACLK ctrl_ic/S00_ACLK ctrl_ic/M00_ACLK ctrl_ic/M01_ACLK
        mem_ic/ACLK mem_ic/S00_ACLK mem_ic/S01_ACLK mem_ic/S02_ACLK mem_ic/M00_ACLK
    }]
    set pins [list [get_bd_pins $clk]]
    foreach p $clk_sinks { lappend pins [get_bd_pins $p] }
    connect_bd_net {*}$pins

    # resets: interconnect cores on interconnect_aresetn, everything else on peripheral_aresetn
    connect_bd_net [get_bd_pins [dict get $ps resetn]] [get_bd_pins rst/ext_reset_in]
    connect_bd_net [get_bd_pins rst/interconnect_aresetn] [get_bd_pins ctrl_ic/ARESETN] [get_bd_pins mem_ic/ARESETN]
    set rst_sinks {
        axi_dma/axi_resetn sasp_gemm/ap_rst_n
        ctrl_ic/S00_ARESETN ctrl_ic/M00_ARESETN ctrl_ic/M01_ARESETN
        mem_ic/S00_ARESETN mem_ic/S01_ARESETN mem_ic/S02_ARESETN mem_ic/M00_ARESETN
    }
    set pins [list [get_bd_pins rst/peripheral_aresetn]]
    foreach p $rst_sinks { lappend pins [get_bd_pins $p] }
    connect_bd_net {*}$pins
}

# Fixed register addresses (64 KiB each) in the PS's general-purpose master window; the DMA's two masters and
# the kernel's weight master see all of DDR through the HP port (assign_bd_address without arguments).
proc sasp::assign_addresses {cfg ps} {
    set space [get_bd_addr_spaces [dict get $ps ctrl_space]]
    assign_bd_address -target_address_space $space -offset [dict get $ps ctrl_base] -range 64K \
        [get_bd_addr_segs axi_dma/S_AXI_LITE/Reg]
    assign_bd_address -target_address_space $space -offset [dict get $ps kern_base] -range 64K \
        [get_bd_addr_segs sasp_gemm/s_axi_control/Reg]
    assign_bd_address
}
