"""Overlay / HLS Tcl under tclsh with the Vivado and Vitis HLS commands stubbed (overlay/tcl_stub/, a CI-only
test double): every script parses and runs, the block design has the expected cells and connections (the stub
refuses a kernel pin that the HLS interface pragmas do not declare), both flows build each board with the part,
clock and chunk of host/data/boards.json, and the build writes <name>.bit and <name>.hwh side by side as
pynq.Overlay expects."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from host.boards import all_boards, board_spec
from host.pynq_backend import DMA_LENGTH_WIDTH

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
PS_PINS = {  # control master, memory slave, PL clock, PL reset, clock property of the PS IP
    "pynq-z2": ("M_AXI_GP0", "S_AXI_HP0", "FCLK_CLK0", "FCLK_RESET0_N", "PCW_FPGA0_PERIPHERAL_FREQMHZ"),
    "ultra96-v2": ("M_AXI_HPM0_FPD", "S_AXI_HP0_FPD", "pl_clk0", "pl_resetn0", "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ"),
}


@pytest.mark.parametrize("board", ["pynq-z2", "ultra96-v2"])
@pytest.mark.parametrize("board_files", [False, True], ids=["explicit-ps", "board-preset"])
def test_block_design(tmp_path, board, board_files):
    spec = board_spec(board)
    parts = spec.profile["board_part"] if board_files else ""
    env = {"SASP_BOARD": board, "SASP_ARRAY": "8", "SASP_STUB_BOARD_PARTS": parts}
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

    # DMA: simple mode, the length register the PYNQ driver requires, 64-bit everywhere
    dma = props_dict(rec["props"]["axi_dma"])
    assert dma["CONFIG.c_include_sg"] == "0"
    assert dma["CONFIG.c_sg_length_width"] == str(DMA_LENGTH_WIDTH)
    for k in ("m_axi_mm2s_data_width", "m_axis_mm2s_tdata_width", "m_axi_s2mm_data_width", "s_axis_s2mm_tdata_width"):
        assert dma[f"CONFIG.c_{k}"] == "64", k

    ctrl_m, mem_s, clk, rstn, clk_prop = PS_PINS[board]
    ps = props_dict(rec["props"]["ps"])
    assert ps[f"CONFIG.{clk_prop}"] == f"{spec.pl_clock_mhz:g}"
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
    clk_prop = PS_PINS[spec.key][4]
    assert props_dict(rec["props"]["ps"])[f"CONFIG.{clk_prop}"] == f"{spec.pl_clock_mhz:g}"


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


def hls_build(rec: dict) -> dict:
    """What the stubbed HLS run built: part, clock period, SA_CHUNK of the kernel's cflags, project folder."""
    cmds = {c[0]: c[1:] for c in rec["cmd"]}
    src = next(c for c in rec["cmd"] if c[0] == "add_files" and c[1].endswith("sasp_gemm.cpp"))
    chunk = next(f for f in src[src.index("-cflags") + 1].split() if f.startswith("-DSA_CHUNK="))
    return {
        "part": cmds["set_part"][0],
        "clock": cmds["create_clock"][cmds["create_clock"].index("-period") + 1],
        "chunk": chunk.split("=")[1],
        "project": Path(cmds["open_project"][-1]).name,
    }


def board_facts(spec) -> dict:
    return {"part": spec.part, "clock": f"{1000 / spec.pl_clock_mhz:.4g}", "chunk": str(spec.kernel_chunk)}


@pytest.mark.skipif(not HLS_SCRIPTS, reason="hls/scripts has no Tcl yet")
@pytest.mark.parametrize("script", HLS_SCRIPTS, ids=lambda p: p.name)
def test_hls_script_runs_stubbed(tmp_path, script):
    res, rec = run_stubbed(script, tmp_path, args=["board=pynq-z2", "array=8"])
    assert res.returncode == 0, res.stderr + res.stdout
    cmds = [c[0] for c in rec["cmd"]]
    assert ["set_top", "sasp_gemm"] in rec["cmd"]
    assert ["set_part", board_spec("pynq-z2").part] in rec["cmd"]
    if "export_design" in cmds:
        assert "csynth_design" in cmds


@pytest.mark.parametrize(
    "spec,name",
    [(b, n) for b in all_boards() for n in (b.key, *b.aliases)] + [(board_spec("pynq-z2"), None)],
    ids=lambda v: getattr(v, "key", v) or "default",
)
def test_hls_builds_the_board_of_boards_json(tmp_path, spec, name):
    """vitis_hls -f ... -tclargs board=<key or alias>: part, clock and chunk are boards.json's; the project is
    named by the board's key (check_reports.py finds it); no board is the PYNQ-Z2."""
    args = ["array=8"] + ([f"board={name}"] if name else [])
    res, rec = run_stubbed(ROOT / "hls" / "scripts" / "csynth.tcl", tmp_path, args=args)
    assert res.returncode == 0, res.stderr + res.stdout
    facts = board_facts(spec)
    assert hls_build(rec) == {**facts, "project": f"vitis_{spec.key}_a8_c{facts['chunk']}"}


def test_hls_explicit_settings_win_and_need_no_python(tmp_path):
    """part=, clock= and chunk= override the board's; with all three no Python runs (SASP_PYTHON is broken)."""
    args = ["board=pynq-z2", "array=8", "part=xc7z020clg484-1", "clock=8", "chunk=48"]
    res, rec = run_stubbed(ROOT / "hls" / "scripts" / "csynth.tcl", tmp_path, {"SASP_PYTHON": "/nonexistent"}, args)
    assert res.returncode == 0, res.stderr + res.stdout
    assert hls_build(rec) == {"part": "xc7z020clg484-1", "clock": "8", "chunk": "48", "project": "vitis_pynq-z2_a8_c48"}
    # one override: the rest from boards.json
    spec = board_spec("ultra96-v2")
    res, rec = run_stubbed(ROOT / "hls" / "scripts" / "csynth.tcl", tmp_path, args=["board=ultra96", "chunk=48"])
    assert res.returncode == 0, res.stderr + res.stdout
    assert hls_build(rec) == {**board_facts(spec), "chunk": "48", "project": "vitis_ultra96-v2_a8_c48"}


@pytest.mark.parametrize(
    "env,board,message",
    [
        ({"SASP_PYTHON": "/nonexistent/python3"}, "pynq-z2", 'couldn\'t execute "/nonexistent/python3"'),
        ({}, "zcu104", "unknown board 'zcu104'; known boards: pynq-z2"),
    ],
    ids=["no-python", "unknown-board"],
)
def test_hls_board_errors(tmp_path, env, board, message):
    """Without a working Python, or for a board boards.json does not know, the HLS scripts stop and say why."""
    res, _ = run_stubbed(ROOT / "hls" / "scripts" / "csynth.tcl", tmp_path, env, [f"board={board}", "array=8"])
    assert res.returncode != 0
    assert message in res.stderr and "host/data/boards.json" in res.stderr, res.stderr
    assert "Pass part=, clock= and chunk=" in res.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("spec", all_boards(), ids=lambda b: b.key)
def test_overlay_drives_hls_export(tmp_path, spec):
    """The overlay Makefile's HLS call runs export_ip.tcl with arguments it accepts, for boards.json's part,
    clock and chunk, and the exported VLNV is the one the overlay instantiates (hls/interface.json)."""
    args = makefile_hls_args(spec.key, 16)
    res, rec = run_stubbed(ROOT / "hls" / "scripts" / "export_ip.tcl", tmp_path, args=args)
    assert res.returncode == 0, res.stderr + res.stdout
    facts = board_facts(spec)
    assert hls_build(rec) == {**facts, "project": f"vitis_{spec.key}_a16_c{facts['chunk']}"}
    exp = next(c for c in rec["cmd"] if c[0] == "export_design")
    opt = dict(zip(exp[1::2], exp[2::2]))
    vlnv = ":".join(opt[k] for k in ("-vendor", "-library", "-ipname", "-version"))
    assert vlnv == IP_VLNV
    assert opt["-output"].endswith(f"sasp_gemm_{spec.key}_a16.zip")
    mk = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "overlay"), "print", f"BOARD={spec.key}", "ARRAY=16"],
        capture_output=True,
        text=True,
    )
    assert f"HLS_ZIP={opt['-output']}" in mk.stdout


# ---- Makefile ----------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("spec", all_boards(), ids=lambda b: b.key)
def test_makefile_parameters(spec):
    res = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "overlay"), "print", f"BOARD={spec.aliases[0] if spec.aliases else spec.key}",
         "ARRAY=8"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first == f"BOARD={spec.key} PART={spec.part} ARRAY=8 CLK_MHZ={spec.pl_clock_mhz:g} CHUNK={spec.kernel_chunk}"
    assert f"overlay/build/{spec.key}/sasp_gemm_8.bit" in res.stdout
    assert f"overlay/build/{spec.key}/sasp_gemm_8.hwh" in res.stdout
    over = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "overlay"), "print", f"BOARD={spec.key}", "PART=xc-override", "CHUNK=48"],
        capture_output=True,
        text=True,
    )
    assert "PART=xc-override" in over.stdout and "CHUNK=48" in over.stdout and "chunk=48" in over.stdout


def test_makefile_check_target():
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    res = subprocess.run(["make", "-s", "-C", str(ROOT / "overlay"), "check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + res.stdout
