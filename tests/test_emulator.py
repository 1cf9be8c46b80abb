"""host.emulator: C-sim of the HLS kernel == numpy model (int8 GEMM + fp16 epilogue), schedule counter == closed
form, the kernel's fp16 rounding == numpy's, and stream errors.

Whisper tiny.en shapes run at reduced M (64 rows, which spans a partial second chunk of 32) except q/k/v/out,
which also runs at the full M = 1500 on the PYNQ-Z2 build (8x8, the board's chunk)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from host.blocksparse import BlockSparseWeights
from host.boards import all_boards, board_spec
from host.cycle_model import input_words, kernel_cycles, output_words
from host.kernel_spec import FLAG_PROBE, ST_PROBE
from host.quant import kernel_epilogue
from host.stream import GemmOperand, pack_input

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed (emulator needs it)")

WHISPER = [("conv1", 240, 384), ("conv2", 1152, 384), ("qkvo", 384, 384), ("fc1", 384, 1536), ("fc2", 1536, 384)]
ARRAYS = [(8, 8), (16, 16), (32, 32), (8, 16), (16, 8), (16, 12)]


@pytest.fixture(scope="module")
def kernels():
    from host.emulator import EmulatedKernel

    cache = {}

    def get(array, chunk=32):
        if (array, chunk) not in cache:
            cache[(array, chunk)] = EmulatedKernel(array, chunk=chunk)
        return cache[(array, chunk)]

    return get


def _op(rng, k, n, array, p, *, extreme=None):
    kb, nb = -(-k // array[0]), -(-n // array[1])
    keep = rng.random((kb, nb)) >= p
    w = rng.integers(-128, 128, (k, n), dtype=np.int8) if extreme is None else np.full((k, n), extreme, np.int8)
    scale = (rng.random(n) * 0.01 + 1e-4).astype(np.float32)
    return GemmOperand(BlockSparseWeights.from_dense(w, array, keep), scale, rng.standard_normal(n).astype(np.float32))


def _x(rng, m, k):
    return rng.integers(-128, 128, (m, k), dtype=np.int8), (rng.random(m) * 0.02 + 1e-4).astype(np.float32)


def _check(ek, x, sx, op):
    y, cyc = ek.run(x, sx, op)
    assert y.dtype == np.float16 and y.shape == (x.shape[0], op.w.n)
    ref = kernel_epilogue(op.w.gemm_int(x), sx, op.scale, op.bias)
    assert np.array_equal(y.view(np.uint16), ref.view(np.uint16))
    assert cyc == kernel_cycles(x.shape[0], op.w.k, op.w.n, op.w.nnz_per_colblock, ek.tile, ek.chunk)
    yi, cyc_i = ek.run(x, sx, op, fp16=False)
    assert yi.dtype == np.int32 and np.array_equal(yi, op.w.gemm_int(x))
    assert cyc_i == kernel_cycles(x.shape[0], op.w.k, op.w.n, op.w.nnz_per_colblock, ek.tile, ek.chunk, fp16=False)
    return yi


@pytest.mark.parametrize("array", ARRAYS, ids=[f"{r}x{c}" for r, c in ARRAYS])
def test_random_layers(kernels, array):
    ek = kernels(array)
    rng = np.random.default_rng(100 + array[0] * 7 + array[1])
    cases = [(1, 40, 24, 0.5), (32, 64, 64, 0.0), (33, 100, 72, 0.4), (70, 17, 9, 0.0), (45, 96, 200, 0.8)]
    for m, k, n, p in cases:
        _check(ek, *_x(rng, m, k), _op(rng, k, n, array, p))


@pytest.mark.parametrize("array", [(8, 8), (16, 16), (16, 12)], ids=["8x8", "16x16", "16x12"])
def test_special_structures(kernels, array):
    ek = kernels(array)
    rng = np.random.default_rng(7)
    r, c = array
    k, n = 4 * r + 3, 3 * c + 1  # K and N not multiples of the array
    x, sx = _x(rng, 50, k)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    kb, nb = -(-k // r), -(-n // c)
    keeps = {name: np.ones((kb, nb), bool) for name in ("dense", "all pruned", "single tile", "empty ends")}
    keeps["all pruned"][:] = False
    keeps["single tile"][:] = False
    keeps["single tile"][kb - 1, 1] = True
    keeps["empty ends"][:, [0, nb - 1]] = False
    for name, keep in keeps.items():
        op = GemmOperand(BlockSparseWeights.from_dense(w, array, keep), np.full(n, 0.01, np.float32),
                         np.linspace(-1, 1, n).astype(np.float32))  # fmt: skip
        y = _check(ek, x, sx, op)
        if name == "all pruned":
            assert not y.any()
            assert np.array_equal(ek.run(x, sx, op)[0], np.broadcast_to(op.bias.astype(np.float16), (50, n)))
        if name == "dense":
            assert np.array_equal(y, x.astype(np.int64) @ w.astype(np.int64))


def test_dsp_packed_build_is_bit_exact():
    """The Ultra96-V2 build with two int8 MACs per DSP48E2 (WP486 packing, at most 7 products per extraction)
    gives the same outputs and cycles, extreme -128 x -128 sums over K = 1536 included."""
    from host.emulator import EmulatedKernel

    ek = EmulatedKernel((16, 16), chunk=32, dsp_pack=True)
    rng = np.random.default_rng(77)
    for m, k, n, p in [(33, 100, 72, 0.4), (1, 384, 384, 0.5), (40, 1536, 64, 0.0)]:
        _check(ek, *_x(rng, m, k), _op(rng, k, n, (16, 16), p))
    x = np.full((3, 1536), -128, dtype=np.int8)
    w = BlockSparseWeights.from_dense(np.full((1536, 32), -128, dtype=np.int8), (16, 16))
    y = _check(ek, x, np.ones(3, np.float32), GemmOperand(w, np.full(32, 1e-5, np.float32), np.zeros(32, np.float32)))
    assert (y == 16384 * 1536).all()


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_trailing_pruned_blocks_few_rows(kernels, m):
    """Few rows, the last stored tile followed by all-pruned column blocks (the decoder's M=1 on a pruned layer)."""
    ek = kernels((8, 8), board_spec("pynq-z2").kernel_chunk)
    rng = np.random.default_rng(m)
    keep = np.zeros((48, 48), bool)
    keep[::2, :5] = True
    w = BlockSparseWeights.from_dense(rng.integers(-128, 128, (384, 384), dtype=np.int8), (8, 8), keep)
    _check(ek, *_x(rng, m, 384), GemmOperand(w, np.full(384, 0.01, np.float32), np.zeros(384, np.float32)))


@pytest.mark.parametrize("array", [(8, 8), (16, 16)], ids=["8x8", "16x16"])
def test_extreme_values_k1536(kernels, array):
    ek = kernels(array)
    for xv, wv in [(-128, -128), (127, -128), (-128, 127)]:
        x = np.full((3, 1536), xv, dtype=np.int8)
        w = BlockSparseWeights.from_dense(np.full((1536, 2 * array[1]), wv, dtype=np.int8), array)
        op = GemmOperand(w, np.full(w.n, 1e-5, np.float32), np.zeros(w.n, np.float32))
        y = _check(ek, x, np.ones(3, np.float32), op)
        assert (y == xv * wv * 1536).all()


@pytest.mark.parametrize("array", [(8, 8), (16, 16)], ids=["8x8", "16x16"])
@pytest.mark.parametrize("name,k,n", WHISPER)
def test_whisper_shapes(kernels, array, name, k, n):
    ek = kernels(array)
    rng = np.random.default_rng(k + n + array[0])
    op = _op(rng, k, n, array, 0.5)
    for m in (64, 1):  # encoder rows (reduced from 1500: a full and a partial chunk) and decoder GEMV
        _check(ek, *_x(rng, m, k), op)


def test_whisper_full_m1500(kernels):
    ek = kernels((8, 8), board_spec("pynq-z2").kernel_chunk)  # the PYNQ-Z2 build
    rng = np.random.default_rng(1500)
    _check(ek, *_x(rng, 1500, 384), _op(rng, 384, 384, (8, 8), 0.5))


def test_fp16_rounding_matches_numpy(kernels):
    """The kernel's fp32 -> fp16 conversion equals numpy's astype(float16) (round to nearest even, overflow to
    infinity, subnormals) on edge values and a million random float32 bit patterns (NaN excluded)."""
    ek = kernels((8, 8))
    rng = np.random.default_rng(16)
    bits = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]
    edge = np.array([0.0, -0.0, 65504, 65519.99, 65520, -65520, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 6.1035156e-5,
                     1 + 2.0**-11, 1 + 3 * 2.0**-11, 2049, 2051, 1e-7, np.inf, -np.inf], np.float32)  # fmt: skip
    x = np.concatenate([edge, x])
    with np.errstate(over="ignore"):
        assert np.array_equal(ek.f32_to_f16(x), x.astype(np.float16).view(np.uint16))


def test_truncated_stream_stalls(kernels):
    from host.emulator import KernelStallError

    ek = kernels((8, 8), 16)
    rng = np.random.default_rng(3)
    op = _op(rng, 64, 64, (8, 8), 0.3)
    x, sx = _x(rng, 40, 64)
    words = pack_input(x, sx, (8, 8))
    with pytest.raises(KernelStallError, match="stalled waiting for input word"):
        ek.run_packed(words[:-5], op.segment, 40, 64, 64)


def test_protocol_errors(kernels):
    from host.emulator import KernelProtocolError

    ek = kernels((8, 8), 16)
    rng = np.random.default_rng(4)
    op = _op(rng, 64, 64, (8, 8), 0.3)
    x, sx = _x(rng, 10, 64)
    words = pack_input(x, sx, (8, 8))
    with pytest.raises(KernelProtocolError, match="finished after"):
        ek.run_packed(np.concatenate([words, words[:3]]), op.segment, 10, 64, 64)
    bad = words.copy()
    bad[0] ^= np.uint64(1)
    with pytest.raises(KernelProtocolError, match="bad header"):
        ek.run_packed(bad, op.segment, 10, 64, 64)
    seg = op.segment.copy()
    seg[1] = np.uint64(0x7777)  # a kidx beyond K_blocks
    with pytest.raises(KernelProtocolError, match="bad weight segment"):
        ek.run_packed(words, seg, 10, 64, 64)


def test_raw_registers_and_word_counts(kernels):
    ek = kernels((8, 8), 16)
    res = ek.run_words(np.zeros(0, np.uint64), np.zeros(1, np.uint64), 1, 8, 8, 0, flags=FLAG_PROBE)
    assert res.regs["status"] == ST_PROBE and res.regs["id_version"] == ek.id_version and res.consumed == 0
    assert res.regs["array_size"] == 8 | (8 << 8) | (16 << 16)
    rng = np.random.default_rng(5)
    op = _op(rng, 64, 64, (8, 8), 0.0)
    x, sx = _x(rng, 10, 64)
    words = pack_input(x, sx, (8, 8))
    assert words.size == input_words(10, 64, 8)
    res = ek.run_words(words, op.segment, 10, 64, 64, output_words(10, 64, 8))
    assert res.rc == 0 and res.produced == output_words(10, 64, 8) == 10 * 8 * 2
    assert res.regs["hw_cycles"] == 1  # C simulation: the free-running counter finds the drain already done
    res = ek.run_words(words, op.segment, 10, 64, 64, 100)  # host expects fewer words
    assert res.rc == 2 and res.produced == 160


def test_chunk_is_the_boards():
    """Without a chunk the emulator builds SA_CHUNK of the board (host/data/boards.json): the one named, else the
    one the array is modeled on; the kernel reports it in array_size, and an explicit chunk wins."""
    from host.emulator import EmulatedKernel, board_chunk

    for b in all_boards():
        assert board_chunk(8, b.key) == board_chunk(b.default_array) == b.kernel_chunk
    pynq = board_spec("pynq-z2").kernel_chunk
    ek = EmulatedKernel(8)  # the PYNQ-Z2 build, as the demo's default 8x8 package runs it
    probe = ek.run_words(np.zeros(0, np.uint64), np.zeros(1, np.uint64), 1, 8, 8, 0, flags=FLAG_PROBE)
    assert ek.chunk == pynq and probe.regs["array_size"] >> 16 == pynq
    assert EmulatedKernel(8, 16, board="ultra96-v2").chunk == 16
