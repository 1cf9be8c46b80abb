"""`make -C hls csim`: the HLS kernel's C++ testbench (g++ + hls4ml's ap_types headers)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

HLS = Path(__file__).resolve().parents[1] / "hls"


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("make") is None, reason="g++ or make not installed")
@pytest.mark.skipif(importlib.util.find_spec("hls4ml") is None, reason="hls4ml (ap_types headers) not installed")
def test_csim_array8():
    res = subprocess.run(["make", "-C", str(HLS), "csim", "ARRAY=8"], capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-4000:]
    assert "CSIM PASSED" in log and "FAIL" not in log, log[-4000:]
    assert log.count("\nok ") >= 14, log[-4000:]


def _declared_args() -> list:
    """(name, is_output, is_stream) of sasp_gemm's parameters, parsed from hls/src/sasp_gemm.h."""
    import re

    text = (HLS / "src" / "sasp_gemm.h").read_text()
    decl = re.search(r"void\s+sasp_gemm\s*\(([^)]*)\)\s*;", text, re.S)
    assert decl, "sasp_gemm declaration not found"
    args = []
    for part in decl.group(1).split(","):
        part = " ".join(part.split())
        name = re.search(r"(\w+)$", part).group(1)
        args.append((name, "&" in part and "stream" not in part, "stream" in part))
    return args


def test_interface_json_matches_header():
    import json
    import re

    spec = json.loads((HLS / "interface.json").read_text())
    args = _declared_args()
    assert [a[0] for a in args if a[2]] == list(spec["streams"])
    regs = spec["s_axilite"]["registers"]
    assert [(r["name"], int(r["offset"], 16)) for r in regs[:4]] == [
        ("ap_ctrl", 0),
        ("GIE", 4),
        ("IER", 8),
        ("ISR", 12),
    ]
    scalars = [a for a in args if not a[2]]
    arg_regs = [r for r in regs if r.get("arg")]
    assert [r["name"] for r in arg_regs] == [a[0] for a in scalars]
    for i, ((name, is_out, _), reg) in enumerate(zip(scalars, arg_regs)):
        assert int(reg["offset"], 16) == 0x10 + 8 * i, name  # Vitis HLS: 32-bit scalars on an 8-byte stride
        assert ("ap_vld_offset" in reg) == is_out, name
        if is_out:
            assert int(reg["ap_vld_offset"], 16) == int(reg["offset"], 16) + 4
    last = max(int(r.get("ap_vld_offset", r["offset"]), 16) for r in regs)
    assert 2 ** (spec["s_axilite"]["addr_width"] - 1) <= last < 2 ** spec["s_axilite"]["addr_width"]
    src = (HLS / "src" / "sasp_gemm.cpp").read_text()
    for name, _, is_stream in args:
        mode = "axis" if is_stream else "s_axilite"
        assert re.search(rf"INTERFACE mode = {mode} port = {name}\b", src), name
    hdr = (HLS / "src" / "sasp_gemm.h").read_text()
    assert int(spec["id_version"], 16) == int(re.search(r"SASP_ID_VERSION (0x[0-9a-fA-F]+)u", hdr).group(1), 16)
