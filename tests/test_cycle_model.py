"""host.cycle_model: hand-derived cycle counts, utilization/sparsity goals, C-sim agreement."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from host.blocksparse import BlockSparseWeights
from host.cycle_model import (
    cycle_breakdown,
    dense_nnz,
    iter_shapes,
    kernel_cycles,
    meta_words,
    stream_bytes,
    utilization,
)


def test_meta_words():
    assert [meta_words(n) for n in (0, 1, 3, 4, 5, 8, 48)] == [1, 2, 2, 2, 3, 3, 13]


def test_single_tile_by_hand():
    # M=1, K=N=8, array 8: header 1; chunk 0's activations 1 row x (scale + 1 word) = 2, + D_ACT 2;
    # one block: S = max(1, STEP_MIN 8, WW 8) = 8, lead = 1 + 1 (kidx) + 8 (params) + 8 (tile 0) = 18,
    # T = max(18 + 8, 1 row x 2 words + D_DRAIN 16) = 26; + D_COMP 12; last block's output 2 + 16.
    assert kernel_cycles(1, 8, 8, [1], 8, 96) == 1 + 2 + 2 + 26 + 12 + 2 + 16


def test_two_chunks_by_hand():
    # M=6, chunk 4, K=N=8, array 8, one tile: row words 2. Chunk 0 (4 rows): S = 8, T = max(18 + 8, 4*2 + 16)
    # = 26, the next chunk's load 2*2 + 2 = 6 < 26. Chunk 1 (2 rows): T = max(26, 2*2 + 16) = 26.
    bd = cycle_breakdown(6, 8, 8, [1], 8, 4)
    assert bd == {"header": 1, "act_load0": 8, "blocks": 52, "act_wait": 0, "drain": 4, "depth": 2 + 2 * 12 + 16}
    assert kernel_cycles(6, 8, 8, [1], 8, 4) == sum(bd.values())


def test_empty_blocks_cost_output_drain():
    # all tiles pruned: each block pushes its zero rows and waits for the drain (rows x C/4 words + D_DRAIN)
    bd = cycle_breakdown(10, 64, 64, [0] * 8, 8, 96)
    assert bd["blocks"] == 8 * max(1 + 8 + 10, 10 * 2 + 16)


def test_activation_load_bound_chunks_wait():
    # few stored tiles and a long K: the next chunk's activations (193 words per row) take longer than the
    # chunk's compute. Chunks of 16, 16, 8 rows; blocks (nt 2, 0): 16 rows: max(18 + 2*16, 16*2 + 16) = 50 and
    # max(9 + 16, 48) = 48; 8 rows: max(18 + 2*8, 8*2 + 16) = 34 and max(9 + 8, 32) = 32.
    bd = cycle_breakdown(40, 1536, 16, [2, 0], 8, 16)
    assert bd["blocks"] == 98 + 98 + 66
    assert bd["act_wait"] == (16 * 193 + 2 - 98) + (8 * 193 + 2 - 98)


@pytest.mark.parametrize("array", [8, 16])
@pytest.mark.parametrize("name,k,n", list(iter_shapes()))
def test_dense_utilization_goal(array, name, k, n):
    assert utilization(1500, k, n, dense_nnz(k, n, array), array, 96) >= 0.90


@pytest.mark.parametrize("m", [256, 1500])
def test_sparsity_scaling_goal_array8(m):
    """Array 8: cycles / dense within 2 points of the kept-tile fraction (random tile masks)."""
    rng = np.random.default_rng(0)
    for _, k, n in iter_shapes():
        kb, nb = -(-k // 8), -(-n // 8)
        dense = kernel_cycles(m, k, n, [kb] * nb, 8, 96)
        for s in (0.25, 0.5, 0.75):
            keep = rng.random((kb, nb)) >= s
            cyc = kernel_cycles(m, k, n, keep.sum(axis=0), 8, 96)
            assert abs(cyc / dense - keep.mean()) <= 0.02, (k, n, s, cyc / dense, keep.mean())


@pytest.mark.parametrize("m", [256, 1500])
def test_sparsity_scaling_array16_output_bound(m):
    """Array 16: within 3 points of ideal at M=1500 (6 at M=256, where chunk 0's activation load weighs more)
    unless the fp16 output stream is the bottleneck (C/4 output words per row and column block vs. nt compute
    cycles per row); then at that floor. The rest is each block's lead (its metadata, parameters and first
    tile: 50 cycles at 16x16 against 4 x 96 for a conv1 block at 75 %)."""
    for _, k, n in iter_shapes():
        kb, nb = -(-k // 16), -(-n // 16)
        dense = kernel_cycles(m, k, n, [kb] * nb, 16, 96)
        for s in (0.25, 0.5, 0.75):
            nt = int(round(kb * (1 - s)))
            frac = kernel_cycles(m, k, n, [nt] * nb, 16, 96) / dense
            floor = m * nb * 4 / dense  # output words / dense cycles
            assert frac >= floor
            assert frac - max(nt / kb, floor) <= (0.03 if m >= 1500 else 0.06), (k, n, s, frac, nt / kb, floor)


def test_gemv_is_weight_bound():
    # M=1: each tile step waits for the next tile's R*C/8 words
    k, n, a = 384, 384, 8
    c = kernel_cycles(1, k, n, dense_nnz(k, n, a), a, 96)
    assert 48 * 48 * 8 <= c <= 48 * 48 * 8 * 1.1


def test_stream_bytes():
    nnz = [3, 0, 5]
    sb = stream_bytes(100, 64, 24, nnz, 8, 96)
    seg = (2 + 1 + 3) + 3 * 8 + 8 * 8  # metadata, 8 parameter words per block, 8 tiles of 8 words
    assert sb.input == 8 * (1 + 100 * 9)
    assert sb.output == 8 * 100 * 3 * 2
    assert sb.weights == 8 * 2 * seg  # read once per chunk
    assert sb.total == sb.input + sb.output + sb.weights
    assert stream_bytes(100, 64, 24, nnz, 8, 96, fp16=False).output == 2 * sb.output


def test_bad_arguments():
    with pytest.raises(ValueError):
        kernel_cycles(10, 64, 64, [8] * 7, 8, 96)
    with pytest.raises(ValueError):
        kernel_cycles(0, 64, 64, [8] * 8, 8, 96)


def test_bad_arrays():
    for bad in (4, 12, (8, 6), (7, 8)):
        with pytest.raises(ValueError, match="multiple of 8"):
            kernel_cycles(1, 64, 64, [1] * 8, bad, 96)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
@pytest.mark.parametrize("array", [(8, 8), (16, 16), (32, 32), (16, 12)], ids=["8", "16", "32", "16x12"])
def test_model_equals_csim_counter(array):
    from host.emulator import EmulatedKernel
    from host.stream import GemmOperand

    rng = np.random.default_rng(array[0] + array[1])
    ek = EmulatedKernel(array, chunk=32)
    shapes = [(1, 40, 24, 0.5), (31, 100, 72, 0.3), (32, 64, 64, 0.0), (33, 64, 64, 0.9), (97, 200, 130, 0.5)]
    shapes += [(70, 96, 96, 1.0), (5, 17, 9, 0.0), (40, 1536, 32, 0.9)]
    for m, k, n, p in shapes:
        kb, nb = -(-k // array[0]), -(-n // array[1])
        keep = rng.random((kb, nb)) >= p
        keep[:, 0] = False  # an all-pruned column block
        w = BlockSparseWeights.from_dense(rng.integers(-128, 128, (k, n), dtype=np.int8), array, keep)
        op = GemmOperand(w, np.ones(n, np.float32), np.zeros(n, np.float32))
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        for fp16 in (True, False):
            _, cyc = ek.run(x, np.ones(m, np.float32), op, fp16=fp16)
            assert cyc == kernel_cycles(m, k, n, w.nnz_per_colblock, array, 32, fp16), (m, k, n, p, fp16)


def test_pruning_ceiling_skips_only_the_named_layers():
    from host.calls import GemmCall
    from host.cycle_model import dense_nnz
    from host.system_model import model_latency, skipped_calls

    calls = [
        GemmCall("encoder", "encoder.blocks.0.mlp.0", 1500, 384, 1536, tuple(dense_nnz(384, 1536, 8))),
        GemmCall("decoder", "decoder.logits", 1, 384, 4096, tuple(dense_nnz(384, 4096, 8))),
    ]
    floor = skipped_calls(calls, ["encoder.blocks.0.mlp.0"])
    assert floor[1] == calls[1] and set(floor[0].nnz) == {0}
    dense, ceiling = (model_latency(c, {}, "pynq-z2", 8)["stages"] for c in (calls, floor))
    assert ceiling["encoder"]["kernel_s"] < dense["encoder"]["kernel_s"] / 10  # no weight tiles left to compute
    assert ceiling["decoder"]["total_s"] == dense["decoder"]["total_s"]
