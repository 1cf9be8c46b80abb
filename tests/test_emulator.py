"""host.emulator: C-sim of the HLS kernel == fast numpy path, cycle counter == model, stream errors.

Whisper tiny.en shapes run at reduced M (64 rows, which spans a partial second chunk of 32) except
q/k/v/out, which also runs at the full M = 1500 on array 8."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from host.blocksparse import BlockSparseWeights
from host.cycle_model import kernel_cycles
from host.stream import pack_input

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed (emulator needs it)")

WHISPER = [("conv1", 240, 384), ("conv2", 1152, 384), ("qkvo", 384, 384), ("fc1", 384, 1536), ("fc2", 1536, 384)]


@pytest.fixture(scope="module")
def kernels():
    from host.emulator import EmulatedKernel

    cache = {}

    def get(array, chunk=32):
        if (array, chunk) not in cache:
            cache[(array, chunk)] = EmulatedKernel(array, chunk=chunk)
        return cache[(array, chunk)]

    return get


def _layer(rng, k, n, array, p, *, extreme=None):
    kb, nb = -(-k // array), -(-n // array)
    keep = rng.random((kb, nb)) >= p
    if extreme is None:
        w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    else:
        w = np.full((k, n), extreme, dtype=np.int8)
    return BlockSparseWeights.from_dense(w, (array, array), keep)


def _check(ek, x, w):
    y, cyc = ek.run(x, w)
    assert y.dtype == np.int32 and y.shape == (x.shape[0], w.n)
    assert np.array_equal(y, w.gemm_int(x))
    assert cyc == kernel_cycles(x.shape[0], w.k, w.n, w.nnz_per_colblock, ek.tile, ek.chunk)
    return y


@pytest.mark.parametrize("array", [4, 8, 12, 16, 32])
def test_random_layers(kernels, array):
    ek = kernels(array)
    rng = np.random.default_rng(100 + array)
    cases = [(1, 40, 24, 0.5), (32, 64, 64, 0.0), (33, 100, 72, 0.4), (70, 17, 9, 0.0), (45, 96, 200, 0.8)]
    for m, k, n, p in cases:
        w = _layer(rng, k, n, array, p)
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        _check(ek, x, w)


@pytest.mark.parametrize("array", [4, 8, 16])
def test_special_structures(kernels, array):
    ek = kernels(array)
    rng = np.random.default_rng(7)
    k, n = 4 * array + 3, 3 * array + 1  # K and N not multiples of the array
    x = rng.integers(-128, 128, (50, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    kb, nb = -(-k // array), -(-n // array)
    keeps = {
        "dense": np.ones((kb, nb), bool),
        "all pruned": np.zeros((kb, nb), bool),
        "single tile": np.zeros((kb, nb), bool),
        "empty first/last blocks": np.ones((kb, nb), bool),
    }
    keeps["single tile"][kb - 1, 1] = True
    keeps["empty first/last blocks"][:, [0, nb - 1]] = False
    for name, keep in keeps.items():
        bs = BlockSparseWeights.from_dense(w, (array, array), keep)
        y = _check(ek, x, bs)
        if name == "all pruned":
            assert not y.any()
        if name == "dense":
            assert np.array_equal(y, x.astype(np.int64) @ w.astype(np.int64))


@pytest.mark.parametrize("array", [4, 8, 16])
def test_extreme_values_k1536(kernels, array):
    ek = kernels(array)
    for xv, wv in [(-128, -128), (127, -128), (-128, 127)]:
        x = np.full((3, 1536), xv, dtype=np.int8)
        w = BlockSparseWeights.from_dense(np.full((1536, 2 * array), wv, dtype=np.int8), (array, array))
        y = _check(ek, x, w)
        assert (y == xv * wv * 1536).all()


@pytest.mark.parametrize("array", [8, 16])
@pytest.mark.parametrize("name,k,n", WHISPER)
def test_whisper_shapes(kernels, array, name, k, n):
    ek = kernels(array)
    rng = np.random.default_rng(k + n + array)
    w = _layer(rng, k, n, array, 0.5)
    for m in (64, 1):  # encoder rows (reduced from 1500: a full and a partial chunk) and decoder GEMV
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        _check(ek, x, w)


def test_whisper_full_m1500(kernels):
    ek = kernels(8, 96)  # the PYNQ-Z2 build
    rng = np.random.default_rng(1500)
    w = _layer(rng, 384, 384, 8, 0.5)
    x = rng.integers(-128, 128, (1500, 384), dtype=np.int8)
    _check(ek, x, w)


def test_truncated_stream_stalls(kernels):
    from host.emulator import KernelStallError

    ek = kernels(8)
    rng = np.random.default_rng(3)
    w = _layer(rng, 64, 64, 8, 0.3)
    x = rng.integers(-128, 128, (40, 64), dtype=np.int8)
    words = pack_input(x, w, ek.chunk)
    with pytest.raises(KernelStallError, match=r"stalled waiting for input word \d+ of \d+") as ei:
        ek.run_packed(words[:-5], 40, w)
    assert isinstance(ei.value, TimeoutError)
    assert f"of {len(words)}" in str(ei.value)


def test_extra_words_and_bad_header(kernels):
    from host.emulator import KernelProtocolError

    ek = kernels(8)
    rng = np.random.default_rng(4)
    w = _layer(rng, 64, 64, 8, 0.3)
    x = rng.integers(-128, 128, (10, 64), dtype=np.int8)
    words = pack_input(x, w, ek.chunk)
    with pytest.raises(KernelProtocolError, match="input words"):
        ek.run_packed(np.concatenate([words, words[:3]]), 10, w)
    bad = words.copy()
    bad[0] ^= np.uint64(1)
    with pytest.raises(KernelProtocolError, match="header"):
        ek.run_packed(bad, 10, w)
    w16 = _layer(rng, 64, 64, 16, 0.0)
    with pytest.raises(ValueError):
        ek.run(x, w16)  # tile/array mismatch caught before the stream is built


def test_registers_and_output_word_count(kernels):
    ek = kernels(8)
    assert ek.id_version == 0x53410100 and ek.array == 8
    out, regs, counts, rc = ek.run_words(np.zeros(0, np.uint64), 1, 8, 8, 0, flags=1)  # probe
    assert rc == 0 and regs[0] == 0x53410100 and regs[1] == 8 | (8 << 8) | (32 << 16) and counts[:2] == (0, 0)
    rng = np.random.default_rng(5)
    w = _layer(rng, 64, 64, 8, 0.0)
    x = rng.integers(-128, 128, (10, 64), dtype=np.int8)
    words = pack_input(x, w, ek.chunk)
    out, regs, counts, rc = ek.run_words(words, 10, 64, 64, 10 * 8 * 4)
    assert rc == 0 and counts == (len(words), 320, 319) and regs[3] == 1
    out, regs, counts, rc = ek.run_words(words, 10, 64, 64, 100)  # host expects fewer words
    assert rc == 2
