"""Host cost classes measured on the board, written as the calibration file the system model loads.

``benchmarks/bench_host_ops.py``'s measurement (numpy classes, the driver's Python per call) runs on the board's
CPU; this test adds what only a board has: one kernel register access through ``pynq`` MMIO, and the fixed cost of
a DMA start and wait, from the smallest kernel run. The file goes to ``results/host_calibration_<board>.json``
(``model_latency(..., calibration=PATH)``); skipped off-board like the whole suite (board_tests/conftest.py).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np

from board_tests.conftest import FAKE, ROOT
from host.boards import board_profile
from host.system_model import DMA_PER_RUN, MMIO_PER_RUN, model_latency


def _bench():
    spec = importlib.util.spec_from_file_location("bench_host_ops", ROOT / "benchmarks" / "bench_host_ops.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_host_calibration(backend, board, results):
    bench = _bench()
    cal = bench.measure_host_classes(repeats=5, progress=False)
    mmio = bench.wall_median(lambda: backend.kernel.write(backend.off["m"], 1), 200)
    acc = bench.probe_accelerator(backend)
    x = np.ones((1, backend.array[0]), np.float32)
    try:
        # smallest kernel run: registers, two DMA starts/waits
        run = bench.wall_median(lambda: acc.matmul(x, "probe"), 50)
        kernel_s = acc.stats.layers["probe"].measured_cycles / acc.stats.layers["probe"].calls
    finally:
        acc.close()
    kernel_s /= board_profile(board)["pl_clock_mhz"] * 1e6
    fixed = run - kernel_s - MMIO_PER_RUN * mmio - cal["classes"]["driver_call"]["s_per_unit"]
    dma = max(0.0, fixed) / DMA_PER_RUN
    label = "CI dry run against tests/fake_pynq, NOT a board" if FAKE else f"on the {board}"
    cal["classes"]["mmio_access"] = {
        "unit": "access",
        "s_per_unit": mmio,
        "basis": f"measured {label}: kernel register write via pynq MMIO (median)",
    }
    cal["classes"]["dma_transfer"] = {
        "unit": "transfer",
        "s_per_unit": dma,
        "basis": f"measured {label}: smallest Accelerator call on the overlay less kernel time, {MMIO_PER_RUN} "
        "register accesses and driver_call, per DMA start and wait (includes the backend's Python per run)",
    }
    cal["source"] = f"board_tests/test_host_calibration.py {label}"
    cal["label"] = "CI DRY RUN: not a board measurement" if FAKE else "measured"
    path = ROOT / "results" / f"host_calibration_{board}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cal, indent=2) + "\n")
    results["host_calibration"] = {"path": str(path), "mmio_access_s": mmio, "dma_transfer_s": dma}
    assert 0 < mmio < 1e-3 and run > kernel_s
    # the model loads the file in place of the planning values
    assert model_latency([], {}, board, backend.array[0], calibration=path)["label"] == "modeled"
