"""Overlay / HLS Tcl under tclsh with the Vivado and Vitis HLS commands stubbed (overlay/tcl_stub/, a CI-only
test double): every script parses and runs, the block design has the expected cells and connections, the HLS
IP's ports used by the overlay match the kernel's interface pragmas, and the build writes <name>.bit and
<name>.hwh side by side as pynq.Overlay expects."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from host.boards import all_boards

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "overlay" / "tcl_stub"
KERNEL_CPP = ROOT / "hls" / "src" / "sasp_gemm.cpp"
INTERFACE = ROOT / "hls" / "interface.json"
_ip = json.loads(INTERFACE.read_text())["ip"]
IP_VLNV = ":".join(_ip[k] for k in ("vendor", "library", "name", "version"))

pytestmark = pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed (apt-get install tcl)")


def tcl_files():
    files = sorted((ROOT / "overlay").rglob("*.tcl")) + sorted((ROOT / "hls" / "scripts").glob("*.tcl"))
    return [f for f in files if "build" not in f.relative_to(ROOT).parts]


def hls_ports(cpp: Path = KERNEL_CPP) -> list:
    """Block-design ports of the HLS IP derived from the top function's INTERFACE pragmas."""
    text = cpp.read_text()
    ports = ["ap_clk", "ap_rst_n"]
    bundles = set()
    for mode, rest in re.findall(r"#pragma\s+HLS\s+INTERFACE\s+mode\s*=\s*(\w+)(.*)", text):
        port = re.search(r"port\s*=\s*(\w+)", rest).group(1)
        if mode == "axis":
            ports.append(port)
        elif mode == "m_axi":
            ports.append("m_axi_" + re.search(r"bundle\s*=\s*(\w+)", rest).group(1))
        elif mode == "s_axilite":
            b = re.search(r"bundle\s*=\s*(\w+)", rest)
            bundles.add(b.group(1) if b else "control")
            if port == "return":
                ports.append("interrupt")
    ports += [f"s_axi_{b}" for b in sorted(bundles)]
    return ports


def run_stubbed(script: Path, tmp_path: Path, env_extra=None, args=()):
    record = tmp_path / "record.txt"
    env = dict(os.environ)
    env.update(
        {
            "SASP_STUB_RECORD": str(record),
            "SASP_STUB_IP_PORTS": " ".join([IP_VLNV] + hls_ports()),
            "SASP_IP_REPO": str(tmp_path / "ip"),
            "SASP_OUT_DIR": str(tmp_path / "out"),
            "SASP_HLS_DIR": str(tmp_path / "hls"),
        }
    )
    env.update(env_extra or {})
    res = subprocess.run(
        ["tclsh", str(STUB / "run_stubbed.tcl"), str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return res, parse_record(record) if record.exists() else None


def parse_record(path: Path) -> dict:
    """The stub's record: one Tcl list per line; parsed with tclsh itself to keep quoting exact."""
    script = (
        "set f [open [lindex $argv 0]]\n"
        "while {[gets $f line] >= 0} { puts [join [lmap x $line {string map {\\n { } \\t { }} $x}] \\t] }\n"
    )
    out = subprocess.run(["tclsh", "/dev/stdin", str(path)], input=script, capture_output=True, text=True, check=True)
    rec = {"cell": {}, "props": {}, "intf_net": [], "net": [], "addr": [], "cmd": [], "hls": {}}
    for line in out.stdout.splitlines():
        kind, *rest = line.split("\t")
        if kind == "cell":
            rec["cell"][rest[0]] = rest[1]
        elif kind == "props":
            rec["props"][rest[0]] = rest[1]
        elif kind in ("intf_net", "net", "addr", "cmd"):
            rec[kind].append(rest)
        elif kind == "hls":
            rec["hls"][rest[0]] = rest[1]
    return rec


def props_dict(tcl_dict: str) -> dict:
    out = subprocess.run(
        ["tclsh", "/dev/stdin"],
        input=f'dict for {{k v}} {{{tcl_dict}}} {{ puts "$k\\t$v" }}\n',
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("\t", 1) for line in out.stdout.splitlines())


# ---- every Tcl file parses ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", tcl_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_tcl_syntax(path):
    res = subprocess.run(["tclsh", str(STUB / "syntax_check.tcl"), str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_syntax_checker_catches_errors(tmp_path):
    bad = tmp_path / "bad.tcl"
    bad.write_text('proc f {} {\n  puts "x"\n')
    res = subprocess.run(["tclsh", str(STUB / "syntax_check.tcl"), str(bad)], capture_output=True, text=True)
    assert res.returncode != 0 and "incomplete command" in res.stderr


# ---- the overlay build under the stub ----------------------------------------------------------------------
BUILD = ROOT / "overlay" / "scripts" / "build_overlay.tcl"

EXPECTED_INTF = {
    ("axi_dma/M_AXIS_MM2S", "sasp_gemm/in_stream"),
    ("sasp_gemm/out_stream", "axi_dma/S_AXIS_S2MM"),
    ("ctrl_ic/M00_AXI", "axi_dma/S_AXI_LITE"),
    ("ctrl_ic/M01_AXI", "sasp_gemm/s_axi_control"),
    ("axi_dma/M_AXI_MM2S", "mem_ic/S00_AXI"),
    ("axi_dma/M_AXI_S2MM", "mem_ic/S01_AXI"),
    ("sasp_gemm/m_axi_gmem", "mem_ic/S02_AXI"),
}
PS_PINS = {
    "pynq-z2": ("M_AXI_GP0", "S_AXI_HP0", "FCLK_CLK0", "FCLK_RESET0_N", "PCW_FPGA0_PERIPHERAL_FREQMHZ", "100"),
    "ultra96-v2": (
        "M_AXI_HPM0_FPD",
        "S_AXI_HP0_FPD",
        "pl_clk0",
        "pl_resetn0",
        "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
        "150",
    ),
}


@pytest.mark.parametrize("board", ["pynq-z2", "ultra96-v2"])
@pytest.mark.parametrize("board_files", [False, True], ids=["explicit-ps", "board-preset"])
def test_block_design(tmp_path, board, board_files):
    part = {"pynq-z2": "tul.com.tw:pynq-z2:part0:1.0", "ultra96-v2": "avnet.com:ultra96v2:part0:1.2"}[board]
    env = {"SASP_BOARD": board, "SASP_ARRAY": "8", "SASP_STUB_BOARD_PARTS": part if board_files else ""}
    res, rec = run_stubbed(BUILD, tmp_path, env)
    assert res.returncode == 0, res.stderr + res.stdout

    cells = rec["cell"]
    ip = {name: vlnv.split(":")[2] for name, vlnv in cells.items()}
    want_ps = "processing_system7" if board == "pynq-z2" else "zynq_ultra_ps_e"
    assert ip == {
        "ps": want_ps,
        "rst": "proc_sys_reset",
        "axi_dma": "axi_dma",
        "sasp_gemm": "sasp_gemm",
        "ctrl_ic": "axi_interconnect",
        "mem_ic": "axi_interconnect",
    }
    assert cells["sasp_gemm"] == IP_VLNV

    # DMA: simple mode, 26-bit length register, 64-bit everywhere
    dma = props_dict(rec["props"]["axi_dma"])
    assert dma["CONFIG.c_include_sg"] == "0"
    assert dma["CONFIG.c_sg_length_width"] == "26"
    for k in ("m_axi_mm2s_data_width", "m_axis_mm2s_tdata_width", "m_axi_s2mm_data_width", "s_axis_s2mm_tdata_width"):
        assert dma[f"CONFIG.c_{k}"] == "64", k

    ctrl_m, mem_s, clk, rstn, clk_prop, mhz = PS_PINS[board]
    ps = props_dict(rec["props"]["ps"])
    assert ps[f"CONFIG.{clk_prop}"] == mhz
    intf = {tuple(n) for n in rec["intf_net"]}
    assert EXPECTED_INTF <= intf
    assert (f"ps/{ctrl_m}", "ctrl_ic/S00_AXI") in intf
    assert ("mem_ic/M00_AXI", f"ps/{mem_s}") in intf
    # each interface pin is used once
    pins = [p for n in rec["intf_net"] for p in n]
    assert len(pins) == len(set(pins))

    nets = rec["net"]
    clk_net = next(n for n in nets if n[0] == f"ps/{clk}")
    for p in ("sasp_gemm/ap_clk", "axi_dma/s_axi_lite_aclk", "axi_dma/m_axi_mm2s_aclk", "axi_dma/m_axi_s2mm_aclk",
              "rst/slowest_sync_clk", "ctrl_ic/ACLK", "mem_ic/ACLK"):  # fmt: skip
        assert p in clk_net, p
    assert [f"ps/{rstn}", "rst/ext_reset_in"] in nets
    periph = next(n for n in nets if n[0] == "rst/peripheral_aresetn")
    assert "sasp_gemm/ap_rst_n" in periph and "axi_dma/axi_resetn" in periph

    # register windows for the DMA and the kernel in the PS master's address space
    segs = {a[0]: a[1] for a in rec["addr"] if a[0]}
    assert "axi_dma/S_AXI_LITE/Reg" in segs and "sasp_gemm/s_axi_control/Reg" in segs
    # the flow reaches the bitstream and checks timing
    cmds = [c[0] for c in rec["cmd"]]
    for c in ("validate_bd_design", "make_wrapper", "launch_runs", "wait_on_run", "report_utilization"):
        assert c in cmds, c
    assert ["launch_runs", "impl_1", "-to_step", "write_bitstream", "-jobs", "4"] in rec["cmd"]
    applied = any(c[0] == "apply_bd_automation" for c in rec["cmd"])
    assert applied == board_files

    # PYNQ naming: same basename, same folder
    out = tmp_path / "out"
    assert (out / "sasp_gemm_8.bit").is_file() and (out / "sasp_gemm_8.hwh").is_file()


@pytest.mark.parametrize("spec", all_boards(), ids=lambda b: b.key)
def test_block_design_follows_boards_json(tmp_path, spec):
    """The overlay takes its part, board part and PL clock from host/data/boards.json, for a key or an alias."""
    name = spec.aliases[0] if spec.aliases else spec.key.upper()
    env = {"SASP_BOARD": name, "SASP_ARRAY": "8", "SASP_STUB_BOARD_PARTS": spec.profile["board_part"]}
    res, rec = run_stubbed(BUILD, tmp_path, env)
    assert res.returncode == 0, res.stderr + res.stdout
    assert f"board={spec.key} part={spec.part} array=8 clk={spec.pl_clock_mhz:g} MHz" in res.stdout
    create = next(c for c in rec["cmd"] if c[0] == "create_project")
    assert create[create.index("-part") + 1] == spec.part
    assert any(c[0] == "apply_bd_automation" for c in rec["cmd"])  # the board part was found: boards.json's
    clk_prop, mhz = PS_PINS[spec.key][4:]
    assert props_dict(rec["props"]["ps"])[f"CONFIG.{clk_prop}"] == mhz == f"{spec.pl_clock_mhz:g}"


def test_overlay_ports_match_kernel_pragmas():
    """The kernel pins the overlay connects exist in the HLS top function's interface."""
    used = set()
    for f in (ROOT / "overlay" / "scripts").glob("*.tcl"):
        used |= set(re.findall(r"sasp_gemm/(\w+)", f.read_text()))
    ports = set(hls_ports())
    assert used, "overlay Tcl does not reference any sasp_gemm pin"
    assert used <= ports, f"overlay uses kernel pins {sorted(used - ports)} not declared by the HLS pragmas ({ports})"
    assert {"in_stream", "out_stream", "m_axi_gmem", "s_axi_control", "ap_clk", "ap_rst_n"} <= used


def test_stub_rejects_wrong_pin(tmp_path):
    """The stub must be able to fail: a misspelt kernel port is an error, as in Vivado."""
    bad = tmp_path / "bad.tcl"
    bad.write_text(
        f"create_bd_cell -type ip -vlnv {IP_VLNV} sasp_gemm\n"
        "create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:1.0 axi_dma\n"
        "connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXIS_MM2S] [get_bd_intf_pins sasp_gemm/in_r]\n"
    )
    res, _ = run_stubbed(bad, tmp_path)
    assert res.returncode != 0 and "has no port 'in_r'" in res.stderr


def test_stub_rejects_disabled_ps_port(tmp_path):
    bad = tmp_path / "bad.tcl"
    bad.write_text(
        "create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 ps\nget_bd_intf_pins ps/S_AXI_HP0\n"
    )
    res, _ = run_stubbed(bad, tmp_path)
    assert res.returncode != 0 and "PCW_USE_S_AXI_HP0" in res.stderr


def test_stub_rejects_unknown_command(tmp_path):
    bad = tmp_path / "bad.tcl"
    bad.write_text("create_bd_desing x\n")
    res, _ = run_stubbed(bad, tmp_path)
    assert res.returncode != 0 and "command not stubbed: create_bd_desing" in res.stderr


def test_unknown_board_is_an_error(tmp_path):
    res, _ = run_stubbed(BUILD, tmp_path, {"SASP_BOARD": "zcu104"})
    assert res.returncode != 0 and "unknown board 'zcu104'" in res.stderr


def test_missing_ip_is_an_error(tmp_path):
    res, _ = run_stubbed(BUILD, tmp_path, {"SASP_IP_VLNV": "xilinx.com:hls:other:1.0"})
    assert res.returncode != 0 and "not found" in res.stderr


# ---- HLS scripts -------------------------------------------------------------------------------------------
HLS_SCRIPTS = [p for p in sorted((ROOT / "hls" / "scripts").glob("*.tcl")) if p.name != "common.tcl"]  # sourced


def makefile_hls_args(board: str = "pynq-z2", array: int = 8) -> list:
    """The -tclargs the overlay Makefile passes to the HLS export script."""
    res = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "overlay"), "print", f"BOARD={board}", f"ARRAY={array}"],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("HLS: "))
    return line.split("-tclargs", 1)[1].split()


@pytest.mark.skipif(not HLS_SCRIPTS, reason="hls/scripts has no Tcl yet")
@pytest.mark.parametrize("script", HLS_SCRIPTS, ids=lambda p: p.name)
def test_hls_script_runs_stubbed(tmp_path, script):
    res, rec = run_stubbed(script, tmp_path, args=["board=pynq-z2", "array=8", "clock=10", "chunk=96"])
    assert res.returncode == 0, res.stderr + res.stdout
    cmds = [c[0] for c in rec["cmd"]]
    assert ["set_top", "sasp_gemm"] in rec["cmd"]
    assert ["set_part", "xc7z020clg400-1"] in rec["cmd"]
    if "export_design" in cmds:
        assert "csynth_design" in cmds


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("board,part", [("pynq-z2", "xc7z020clg400-1"), ("ultra96-v2", "xczu3eg-sbva484-1-i")])
def test_overlay_drives_hls_export(tmp_path, board, part):
    """The Makefile's HLS call runs export_ip.tcl with arguments it accepts, for the right part, and the
    exported VLNV is the one the overlay instantiates (hls/interface.json)."""
    args = makefile_hls_args(board, 16)
    res, rec = run_stubbed(ROOT / "hls" / "scripts" / "export_ip.tcl", tmp_path, args=args)
    assert res.returncode == 0, res.stderr + res.stdout
    assert ["set_part", part] in rec["cmd"]
    exp = next(c for c in rec["cmd"] if c[0] == "export_design")
    opt = dict(zip(exp[1::2], exp[2::2]))
    vlnv = ":".join(opt[k] for k in ("-vendor", "-library", "-ipname", "-version"))
    assert vlnv == IP_VLNV
    board_arg = dict(a.split("=") for a in args)["board"]
    assert opt["-output"].endswith(f"sasp_gemm_{board_arg}_a16.zip")
    mk = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "overlay"), "print", f"BOARD={board}", "ARRAY=16"],
        capture_output=True,
        text=True,
    )
    assert f"HLS_ZIP={opt['-output']}" in mk.stdout


# ---- Makefile ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("board,part,clk", [("pynq-z2", "xc7z020clg400-1", "100"), ("ultra96-v2", "xczu3eg", "150")])
def test_makefile_parameters(board, part, clk):
    res = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "overlay"), "print", f"BOARD={board}", "ARRAY=8"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert f"PART={part}" in res.stdout and f"CLK_MHZ={clk}" in res.stdout
    assert f"overlay/build/{board}/sasp_gemm_8.bit" in res.stdout
    assert f"overlay/build/{board}/sasp_gemm_8.hwh" in res.stdout


def test_makefile_check_target():
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    res = subprocess.run(["make", "-s", "-C", str(ROOT / "overlay"), "check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + res.stdout
