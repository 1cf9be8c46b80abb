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
