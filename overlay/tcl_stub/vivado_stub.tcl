# TEST DOUBLE for CI only (no Vivado / Vitis HLS here): a tclsh prelude that defines the Vivado and
# Vitis HLS commands the overlay and HLS scripts use as recording no-ops, checks what a real tool would
# reject (unknown cells, pins that the IP does not have or that its configuration has not enabled,
# unstubbed commands), and writes a record of the design to $::env(SASP_STUB_RECORD) for
# tests/test_overlay_tcl.py. It models nothing about timing, synthesis or IP behaviour.
#
#   tclsh overlay/tcl_stub/run_stubbed.tcl <script.tcl> [args...]
#
# Environment: SASP_STUB_RECORD (output file), SASP_STUB_IP_PORTS ("vlnv port port ..." of the HLS IP),
# SASP_STUB_BOARD_PARTS (board parts to report as installed).

namespace eval stub {
    variable log {}
    variable cells [dict create]      ;# name -> vlnv
    variable props [dict create]      ;# name -> dict of CONFIG.* properties
    variable intf_nets {}
    variable nets {}
    variable addrs {}
    variable files {}
    variable project_dir ""
    variable hls [dict create]
    variable ip_ports [dict create]
    if {[info exists ::env(SASP_STUB_IP_PORTS)]} {
        set spec $::env(SASP_STUB_IP_PORTS)
        dict set ip_ports [lindex $spec 0] [lrange $spec 1 end]
    }

    # Pins of the Xilinx IPs used here (PG021 axi_dma, PG164 proc_sys_reset, PG059 axi_interconnect,
    # PS7 / PS8 port lists). A pin listed as {name PROPERTY value} exists only when CONFIG.PROPERTY is value.
    variable ip_pins [dict create \
        axi_dma {S_AXI_LITE M_AXI_MM2S M_AXI_S2MM M_AXIS_MM2S S_AXIS_S2MM s_axi_lite_aclk m_axi_mm2s_aclk
                 m_axi_s2mm_aclk axi_resetn mm2s_introut s2mm_introut} \
        proc_sys_reset {slowest_sync_clk ext_reset_in aux_reset_in mb_debug_sys_rst dcm_locked mb_reset
                        bus_struct_reset peripheral_reset interconnect_aresetn peripheral_aresetn} \
        axi_interconnect {ACLK ARESETN} \
        processing_system7 {DDR FIXED_IO {FCLK_CLK0 PCW_EN_CLK0_PORT 1} {FCLK_RESET0_N PCW_EN_RST0_PORT 1}
                            {M_AXI_GP0 PCW_USE_M_AXI_GP0 1} {M_AXI_GP0_ACLK PCW_USE_M_AXI_GP0 1}
                            {S_AXI_HP0 PCW_USE_S_AXI_HP0 1} {S_AXI_HP0_ACLK PCW_USE_S_AXI_HP0 1}} \
        zynq_ultra_ps_e {{pl_clk0 PSU__FPGA_PL0_ENABLE 1} pl_resetn0
                         {M_AXI_HPM0_FPD PSU__USE__M_AXI_GP0 1} {maxihpm0_fpd_aclk PSU__USE__M_AXI_GP0 1}
                         {S_AXI_HP0_FPD PSU__USE__S_AXI_GP2 1} {saxihp0_fpd_aclk PSU__USE__S_AXI_GP2 1}} \
    ]

    proc rec {args} { variable log; lappend log $args }

    proc ip_name {vlnv} { return [lindex [split $vlnv :] 2] }

    proc cell_prop {cell key default} {
        variable props
        if {[dict exists $props $cell $key]} { return [dict get $props $cell $key] }
        return $default
    }

    # Does pin "cell/pin" exist on the design as configured so far?
    proc check_pin {path} {
        variable cells; variable ip_pins; variable ip_ports
        set parts [split $path /]
        if {[llength $parts] != 2} { error "stub: pin path '$path' is not cell/pin" }
        lassign $parts cell pin
        if {![dict exists $cells $cell]} { error "stub: get_bd_pins $path: no cell '$cell' (cells: [dict keys $cells])" }
        set vlnv [dict get $cells $cell]
        set name [ip_name $vlnv]
        if {[dict exists $ip_ports $vlnv]} {
            if {$pin ni [dict get $ip_ports $vlnv]} { error "stub: IP $vlnv has no port '$pin' (ports: [dict get $ip_ports $vlnv])" }
            return
        }
        if {$name eq "axi_interconnect"} {
            if {[regexp {^([SM])(\d\d)_(AXI|ACLK|ARESETN)$} $pin -> sm idx kind]} {
                set n [cell_prop $cell [expr {$sm eq "S" ? "CONFIG.NUM_SI" : "CONFIG.NUM_MI"}] 1]
                if {[scan $idx %d] >= $n} { error "stub: $path: interconnect $cell has only $n ${sm}I ports" }
                return
            }
        }
        if {![dict exists $ip_pins $name]} { error "stub: no pin table for IP $vlnv" }
        foreach p [dict get $ip_pins $name] {
            if {[lindex $p 0] ne $pin} continue
            if {[llength $p] == 3} {
                set v [cell_prop $cell "CONFIG.[lindex $p 1]" 0]
                if {$v ne [lindex $p 2]} { error "stub: $path exists only with CONFIG.[lindex $p 1]=[lindex $p 2] (now '$v')" }
            }
            return
        }
        error "stub: IP $vlnv has no pin '$pin'"
    }

    proc dump {} {
        variable log; variable cells; variable props; variable intf_nets; variable nets; variable addrs
        variable files; variable hls
        if {![info exists ::env(SASP_STUB_RECORD)]} return
        set f [open $::env(SASP_STUB_RECORD) w]
        foreach {k v} $cells { puts $f [list cell $k $v] }
        foreach {k v} $props { puts $f [list props $k $v] }
        foreach n $intf_nets { puts $f [list intf_net {*}$n] }
        foreach n $nets { puts $f [list net {*}$n] }
        foreach a $addrs { puts $f [list addr {*}$a] }
        foreach c $files { puts $f [list file {*}$c] }
        foreach {k v} $hls { puts $f [list hls $k $v] }
        foreach c $log { puts $f [list cmd {*}$c] }
        close $f
    }
}

# ---- Vivado project / block design ------------------------------------------------------------
proc version {args} { return "2022.1" }
proc create_project {args} {
    stub::rec create_project {*}$args
    set pos [lsearch -not -regexp $args {^-}]
    set stub::project_dir [lindex [lsearch -all -inline -not -regexp $args {^-}] 1]
}
proc current_project {args} { return project }
proc get_board_parts {args} {
    set pat [lindex $args end]
    if {[info exists ::env(SASP_STUB_BOARD_PARTS)] && $pat in $::env(SASP_STUB_BOARD_PARTS)} { return $pat }
    return ""
}
proc get_ipdefs {args} {
    set pat [lindex $args end]
    if {[regexp {^xilinx\.com:ip:([a-z0-9_]+):\*$} $pat -> name]} { return [list "xilinx.com:ip:$name:1.0"] }
    if {[dict exists $stub::ip_ports $pat]} { return $pat }
    return ""
}
proc update_ip_catalog {args} { stub::rec update_ip_catalog {*}$args }
proc create_bd_design {args} { stub::rec create_bd_design {*}$args }
proc current_bd_design {args} { return sasp_bd }
proc create_bd_cell {args} {
    set i [lsearch $args -vlnv]
    if {$i < 0} { error "stub: create_bd_cell without -vlnv" }
    set vlnv [lindex $args [expr {$i + 1}]]
    if {[llength [split $vlnv :]] != 4} { error "stub: bad VLNV '$vlnv'" }
    if {![string match "xilinx.com:ip:*" $vlnv] && ![dict exists $stub::ip_ports $vlnv]} {
        error "stub: IP $vlnv is not in the catalog (ip_repo_paths)"
    }
    set name [lindex $args end]
    if {[dict exists $stub::cells $name]} { error "stub: cell $name exists" }
    dict set stub::cells $name $vlnv
    dict set stub::props $name [dict create]
    return $name
}
proc get_bd_cells {args} {
    set name [lindex $args end]
    if {![dict exists $stub::cells $name]} { error "stub: no cell $name" }
    return $name
}
proc set_property {args} {
    # set_property -dict {k v ...} obj | set_property key value obj
    if {[lindex $args 0] eq "-dict"} {
        set kv [lindex $args 1]; set obj [lindex $args 2]
    } else {
        set kv [lrange $args 0 1]; set obj [lindex $args 2]
    }
    if {[llength $kv] % 2} { error "stub: set_property with an odd key/value list" }
    if {[dict exists $stub::cells $obj]} {
        dict for {k v} $kv { dict set stub::props $obj $k $v }
    }
    stub::rec set_property $kv $obj
}
proc get_property {key obj} {
    switch -- $key {
        PROGRESS { return "100%" }
        SLACK { return 0.250 }
        default { return "" }
    }
}
proc get_bd_pins {args} { set p [lindex $args end]; stub::check_pin $p; return $p }
proc get_bd_intf_pins {args} { set p [lindex $args end]; stub::check_pin $p; return $p }
proc make_bd_intf_pins_external {args} { stub::rec make_bd_intf_pins_external {*}$args }
proc apply_bd_automation {args} { stub::rec apply_bd_automation {*}$args }
proc connect_bd_intf_net {args} {
    set pins [lsearch -all -inline -not -regexp $args {^-}]
    if {[llength $pins] != 2} { error "stub: connect_bd_intf_net needs two interface pins, got $args" }
    lappend stub::intf_nets $pins
}
proc connect_bd_net {args} {
    set pins [lsearch -all -inline -not -regexp $args {^-}]
    if {[llength $pins] < 2} { error "stub: connect_bd_net needs at least two pins, got $args" }
    foreach n $stub::nets {
        foreach p $pins { if {$p in $n && $p ne [lindex $pins 0]} { error "stub: pin $p is already driven ($n)" } }
    }
    lappend stub::nets $pins
}
proc get_bd_addr_spaces {args} { return [lindex $args end] }
proc get_bd_addr_segs {args} {
    set p [lindex $args end]
    stub::check_pin [join [lrange [split $p /] 0 1] /]
    return $p
}
proc assign_bd_address {args} {
    set opts [dict create]
    set rest {}
    for {set i 0} {$i < [llength $args]} {incr i} {
        set a [lindex $args $i]
        if {$a in {-offset -range -target_address_space}} { dict set opts $a [lindex $args [incr i]] } \
        elseif {$a ne "-force"} { lappend rest $a }
    }
    lappend stub::addrs [list $rest $opts]
}
proc validate_bd_design {args} { stub::rec validate_bd_design }
proc save_bd_design {args} { stub::rec save_bd_design }
proc get_files {args} { return [lindex $args end] }
proc generate_target {args} { stub::rec generate_target {*}$args }
proc make_wrapper {args} { stub::rec make_wrapper {*}$args; return "sasp_bd_wrapper.v" }
proc add_files {args} { stub::rec add_files {*}$args }
proc current_fileset {args} { return sources_1 }
proc update_compile_order {args} { stub::rec update_compile_order {*}$args }
proc get_runs {args} { return [lindex $args end] }
proc launch_runs {args} {
    stub::rec launch_runs {*}$args
    # pretend implementation wrote a bitstream and the BD its hardware handoff
    if {[lindex $args 0] eq "impl_1" && $stub::project_dir ne ""} {
        set d [file join $stub::project_dir stub.runs impl_1]
        file mkdir $d
        close [open [file join $d sasp_bd_wrapper.bit] w]
        set h [file join $stub::project_dir stub.gen sources_1 bd sasp_bd hw_handoff]
        file mkdir $h
        close [open [file join $h sasp_bd.hwh] w]
    }
}
proc wait_on_run {args} { stub::rec wait_on_run {*}$args }
proc open_run {args} { stub::rec open_run {*}$args }
proc report_utilization {args} { stub::rec report_utilization {*}$args }
proc report_timing_summary {args} { stub::rec report_timing_summary {*}$args }
proc get_timing_paths {args} { return path }
proc write_hw_platform {args} { stub::rec write_hw_platform {*}$args }

# ---- Vitis HLS --------------------------------------------------------------------------------
foreach cmd {open_project set_top open_solution set_part create_clock config_export config_interface
             config_compile config_schedule config_rtl csim_design csynth_design cosim_design export_design
             close_project close_solution set_directive_top} {
    proc $cmd {args} [string map [list CMD $cmd] {
        stub::rec CMD {*}$args
        dict lappend stub::hls CMD $args
    }]
}
proc add_files {args} { stub::rec add_files {*}$args; dict lappend stub::hls add_files $args }

# anything else a script calls is an error (a real tool command missing from this stub must be added here)
rename unknown _stub_original_unknown
proc unknown {args} { error "stub: command not stubbed: [lindex $args 0]" }

# scripts may end with `exit`: write the record first
rename exit _stub_exit
proc exit {{code 0}} { stub::dump; _stub_exit $code }
