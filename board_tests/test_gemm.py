"""Kernel results on every Whisper tiny.en GEMM shape, the largest DMA transfers and the cycle counter, on the
board. The overlay has no DMA loopback path (MM2S feeds the kernel, the kernel feeds S2MM), so the largest
transfers are tested through the kernel: the largest input stream (fc2 with dense weights) and the largest
output stream (fc1, 1500 x 1536 int32 = 9.2 MB), each checked word for word against the numpy reference."""

from __future__ import annotations

import time

import numpy as np
import pytest

from board_tests.conftest import FAKE
from board_tests.shapes import SHAPES, random_case
from host.cycle_model import kernel_cycles, stream_bytes
from host.resources import board_profile

# Wall-clock time of a kernel run vs its cycle counter / f_clk. The counter counts the kernel's loop iterations
# (pipeline stalls on the streams are not counted), so a run cannot take less than cycles / f_clk: 0.95 allows
# for timer resolution. Upper bound: the kernel reads at most one 8-byte word per cycle (800 MB/s at 100 MHz,
# 1.2 GB/s at 150 MHz, the HP port's peak per direction) while S2MM writes, sharing the DDR with the CPU
# (PYNQ-Z2: DDR3 x16, 2.1 GB/s peak); stalls and the driver's polling latency stay well under 2x on the
# large GEMMs checked here, so more than 2x means the DMA path is misbuilt (e.g. a 32-bit HP port, a narrow
# interconnect or a slower PL clock than the .hwh says).
WALL_RATIO_MIN, WALL_RATIO_MAX, WALL_MIN_CYCLES = 0.95, 2.0, 2_000_000


@pytest.mark.parametrize("name,m,k,n", SHAPES, ids=[s[0] for s in SHAPES])
def test_whisper_shape_bit_exact(backend, results, name, m, k, n):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    x, w = random_case(rng, m, k, n, backend.array)
    t0 = time.perf_counter()
    y, cycles = backend.gemm(x, w)
    wall = time.perf_counter() - t0
    ref = w.gemm_int(x)
    mism = int(np.count_nonzero(y != ref))
    assert mism == 0, f"{name}: {mism} of {y.size} outputs differ from BlockSparseWeights.gemm_int"

    # the counter is the kernel's own schedule counter: it must equal the cycle model exactly, run by run
    runs = list(_runs(backend, m, w))
    model_runs = [kernel_cycles(mm, kk, nn, nnz, backend.array, backend.chunk) for mm, kk, nn, nnz in runs]
    model = sum(model_runs)
    ratio = cycles / model
    f_clk = board_profile(backend.board)["pl_clock_mhz"] * 1e6
    kernel_s = sum(backend.last_run_s)
    wall_ratio = kernel_s / (cycles / f_clk)
    nbytes = sum(stream_bytes(mm, kk, nn, nnz, backend.array, backend.chunk).total for mm, kk, nn, nnz in runs)
    results.setdefault("gemm", []).append(
        {
            "name": name, "m": m, "k": k, "n": n, "nnz_tiles": w.nnz_tiles, "total_tiles": w.total_tiles,
            "runs": len(runs), "cycles": cycles, "model_cycles": model, "cycle_ratio": ratio,
            "kernel_s": kernel_s, "call_s": wall, "wall_over_cycles": wall_ratio, "stream_bytes": nbytes,
        }
    )  # fmt: skip
    assert backend.last_cycles == model_runs, f"{name}: per-run counters {backend.last_cycles} != model {model_runs}"
    assert cycles == model, f"{name}: cycle counter {cycles} != model {model} (ratio {ratio:.6f})"
    if cycles >= WALL_MIN_CYCLES and not FAKE:
        assert WALL_RATIO_MIN <= wall_ratio <= WALL_RATIO_MAX, (
            f"{name}: kernel wall time {kernel_s * 1e3:.2f} ms is {wall_ratio:.2f}x cycles/f_clk"
        )


def _runs(backend, m, w):
    """(M, K, N, nnz_per_colblock) of each kernel run the backend makes for ``x[m] @ w`` (same splitting)."""
    from host.pynq_backend import rows_per_call, split_columns, split_rows_k

    for _, _, wk in split_rows_k(w, backend.k_max):
        for _, wn in split_columns(wk, backend.n_max):
            rows = rows_per_call(m, wn, backend.chunk, backend.dma_max_bytes, backend.dma_max_bytes)
            for r0 in range(0, m, rows):
                yield min(rows, m - r0), wn.k, wn.n, wn.nnz_per_colblock


@pytest.mark.parametrize(
    "name,m,k,n",
    [("largest input stream: fc2 dense", 1500, 1536, 384), ("largest output stream: fc1", 1500, 384, 1536)],
)
def test_largest_transfers_through_kernel(backend, results, name, m, k, n):
    rng = np.random.default_rng(7)
    x, w = random_case(rng, m, k, n, backend.array, density=1.0)
    sb = stream_bytes(m, k, n, w.nnz_per_colblock, backend.array, backend.chunk)
    assert max(sb.input, sb.output) > (1 << 23), "not a large transfer (needs more than 23 length bits)"
    t0 = time.perf_counter()
    y, _ = backend.gemm(x, w)
    dt = time.perf_counter() - t0
    assert len(backend.last_cycles) == 1, "the GEMM was split: the DMA length register is narrower than expected"
    assert np.array_equal(y, w.gemm_int(x))
    results.setdefault("dma", []).append(
        {
            "name": name,
            "input_bytes": sb.input,
            "output_bytes": sb.output,
            "kernel_s": backend.last_run_s[0],
            "call_s": dt,
            "bytes_per_s": sb.total / backend.last_run_s[0],
        }
    )
