"""The HLS kernel's C++ testbench (`make -C hls csim`, g++ + hls4ml's ap_types headers) and the register map
(hls/interface.json) against the Vitis HLS 2022+ rule applied to the top function's arguments."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HLS = Path(__file__).resolve().parents[1] / "hls"
FIXTURE = Path(__file__).resolve().parent / "fake_pynq" / "xsasp_gemm_hw.h"
sys.path.insert(0, str(HLS / "scripts"))
import regmap  # noqa: E402


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None, reason="g++ or make not installed")
@pytest.mark.skipif(importlib.util.find_spec("hls4ml") is None, reason="hls4ml (ap_types headers) not installed")
@pytest.mark.parametrize("array", ["8", "16x12"])
def test_csim(array):
    res = subprocess.run(["make", "-C", str(HLS), "csim", f"ARRAY={array}", f"PYTHON={sys.executable}"],
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert "CSIM PASSED" in log and "FAIL" not in log, log[-4000:]
    assert log.count("\nok ") >= 20, log[-4000:]


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("board", ["", "pynq-z2", "ultra96", "ultra96-v2"])
def test_make_builds_the_boards_chunk(board):
    """`make -C hls csim [BOARD=...]` compiles SA_CHUNK = the board's kernel_chunk (host/data/boards.json; the
    PYNQ-Z2 without BOARD); CHUNK= overrides it; an unknown board stops make with the known ones."""
    from host.boards import board_spec

    chunk = board_spec(board or "pynq-z2").kernel_chunk
    args = ["make", "-n", "-C", str(HLS), "csim", "ARRAY=8"] + ([f"BOARD={board}"] if board else [])
    dry = subprocess.run(args, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert f"csim_r8c8_ch{chunk}_p0" in dry.stdout
    assert "csim_r8c8_ch48_p0" in subprocess.run([*args, "CHUNK=48"], capture_output=True, text=True).stdout
    bad = subprocess.run(["make", "-n", "-C", str(HLS), "csim", "BOARD=zcu104"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown board 'zcu104'" in bad.stderr


def test_interface_json_follows_the_vitis_rule():
    """Offsets derived from the argument list by the 2022+ rule (inputs 8 bytes, ap_vld outputs 16) equal
    interface.json and the driver-header fixture the fake pynq uses."""
    rule = regmap.rule_registers(regmap.top_args())
    iface = json.loads((HLS / "interface.json").read_text())
    assert regmap.interface_registers(iface) == rule
    assert iface["s_axilite"]["addr_width"] == regmap.addr_width(rule) == 8
    assert regmap.header_registers(FIXTURE.read_text()) == rule
    offs = {r["name"]: r["offset"] for r in rule}
    assert (offs["wmem"], offs["flags"], offs["id_version"], offs["status"]) == (0x10, 0x40, 0x48, 0x88)


def test_regmap_check_fails_on_a_wrong_offset(tmp_path, monkeypatch, capsys):
    iface = json.loads((HLS / "interface.json").read_text())
    for reg in iface["s_axilite"]["registers"]:
        if reg["name"] == "cycles":
            reg["offset"] = "0x60"  # the old 8-byte output stride
    bad = tmp_path / "interface.json"
    bad.write_text(json.dumps(iface))
    monkeypatch.setattr(regmap, "INTERFACE", bad)
    assert regmap.main(["--check"]) == 1
    assert "differs from the rule" in capsys.readouterr().err


def test_rule_refuses_an_input_after_an_output():
    args = [regmap.Arg("a", 32, True), regmap.Arg("b", 32, False)]
    with pytest.raises(ValueError, match="follows an output"):
        regmap.rule_registers(args)
    assert [r["offset"] for r in regmap.rule_registers([regmap.Arg("p", 64, False), regmap.Arg("q", 32, False)])][
        4:
    ] == [0x10, 0x1C]


def test_interface_json_written_from_an_exported_header(tmp_path, monkeypatch):
    """`make synth` rewrites interface.json from the header Vitis exports: from the fixture it gives the same file."""
    copy = tmp_path / "interface.json"
    copy.write_text((HLS / "interface.json").read_text())
    monkeypatch.setattr(regmap, "INTERFACE", copy)
    assert regmap.main(["--from-header", str(FIXTURE)]) == 0
    assert json.loads(copy.read_text()) == json.loads((HLS / "interface.json").read_text())


def test_pragmas_and_id_match_the_declaration():
    src = (HLS / "src" / "sasp_gemm.cpp").read_text()
    for arg in regmap.top_args():
        assert re.search(rf"INTERFACE mode = s_axilite port = {arg.name}\b", src), arg.name
    for stream in ("in_stream", "out_stream"):
        assert re.search(rf"INTERFACE mode = axis port = {stream}\b", src), stream
    hdr = (HLS / "src" / "sasp_gemm.h").read_text()
    iface = json.loads((HLS / "interface.json").read_text())
    assert int(iface["id_version"], 16) == int(re.search(r"SASP_ID_VERSION (0x[0-9a-fA-F]+)u", hdr).group(1), 16)
