"""host.blocksparse: compression round trip, validation messages, exact reference GEMM."""

from __future__ import annotations

import numpy as np
import pytest

from host.blocksparse import BlockSparseWeights


def _rand_w(rng, k, n, tile, p_prune):
    kb, nb = -(-k // tile[0]), -(-n // tile[1])
    keep = rng.random((kb, nb)) >= p_prune
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    return w, keep


@pytest.mark.parametrize("tile", [(4, 4), (8, 8), (12, 12), (16, 16), (8, 16)])
@pytest.mark.parametrize("k,n", [(8, 8), (17, 9), (100, 72), (240, 384)])
def test_roundtrip_with_keep(tile, k, n):
    rng = np.random.default_rng(k * 1000 + n + tile[0])
    w, keep = _rand_w(rng, k, n, tile, 0.4)
    bs = BlockSparseWeights.from_dense(w, tile, keep)
    bs.validate("layer")
    r, c = tile
    expect = np.zeros((keep.shape[0] * r, keep.shape[1] * c), dtype=np.int8)
    expect[:k, :n] = w
    mask = np.kron(keep, np.ones((r, c), dtype=bool))
    expect[~mask] = 0
    assert np.array_equal(bs.to_dense(), expect[:k, :n])
    assert bs.nnz_tiles == int(keep.sum())
    assert bs.total_tiles == keep.size
    assert np.array_equal(bs.nnz_per_colblock, keep.sum(axis=0))
    assert bs.tiles.dtype == np.int8 and bs.colptr.dtype == np.int32 and bs.kidx.dtype == np.int32


def test_keep_none_keeps_nonzero_tiles_only():
    w = np.zeros((16, 24), dtype=np.int8)
    w[9, 17] = -3  # tile (1, 2)
    w[0, 0] = 1  # tile (0, 0)
    bs = BlockSparseWeights.from_dense(w, (8, 8))
    assert bs.nnz_tiles == 2
    assert list(bs.colptr) == [0, 1, 1, 2]
    assert list(bs.kidx) == [0, 1]
    assert np.array_equal(bs.to_dense(), w)


def test_from_dense_rejects_bad_input():
    with pytest.raises(ValueError):
        BlockSparseWeights.from_dense(np.zeros((8, 8), dtype=np.int16), (8, 8))
    with pytest.raises(ValueError):
        BlockSparseWeights.from_dense(np.zeros((8, 8), dtype=np.int8), (8, 8), np.ones((2, 2), dtype=bool))


def _good():
    rng = np.random.default_rng(1)
    w, keep = _rand_w(rng, 32, 24, (8, 8), 0.3)
    keep[:, 1] = True
    return BlockSparseWeights.from_dense(w, (8, 8), keep)


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda b: setattr(b, "kidx", b.kidx.copy() + 100), "out of range"),
        (lambda b: setattr(b, "tiles", b.tiles.astype(np.int16)), "dtype"),
        (lambda b: setattr(b, "colptr", b.colptr.astype(np.int64)), "dtype"),
        (lambda b: setattr(b, "tiles", b.tiles[:, :4]), "shape"),
        (lambda b: setattr(b, "colptr", b.colptr[:-1]), "shape"),
        (lambda b: b.colptr.__setitem__(-1, b.colptr[-1] - 1), "colptr"),
        (lambda b: b.colptr.__setitem__(1, b.colptr[2] + 1), "monotone"),
        (lambda b: setattr(b, "tile", (8, 4)), "shape"),
    ],
)
def test_validate_faults(mutate, needle):
    b = _good()
    b.validate("ok")
    mutate(b)
    with pytest.raises(ValueError) as ei:
        b.validate("enc.0.fc1")
    assert "enc.0.fc1" in str(ei.value) and needle in str(ei.value)


def test_validate_duplicate_and_unsorted_kidx():
    b = _good()
    lo, hi = int(b.colptr[1]), int(b.colptr[2])
    assert hi - lo == 4
    b.kidx[lo + 1] = b.kidx[lo]
    with pytest.raises(ValueError, match="dec.q: duplicate kidx"):
        b.validate("dec.q")
    b = _good()
    b.kidx[lo], b.kidx[lo + 1] = b.kidx[lo + 1], b.kidx[lo]
    with pytest.raises(ValueError, match="unsorted kidx"):
        b.validate("dec.q")
    b = _good()  # a new column block may restart at a lower kidx: valid
    assert b.kidx[hi] <= b.kidx[hi - 1]
    b.validate("x")


@pytest.mark.parametrize("tile", [(4, 4), (8, 8), (12, 12), (16, 16), (32, 32)])
def test_gemm_int_matches_int64(tile):
    rng = np.random.default_rng(tile[0])
    for m, k, n, p in [(1, 40, 24, 0.5), (33, 100, 72, 0.0), (7, 384, 96, 0.75), (5, 17, 9, 1.0), (3, 1536, 40, 0.3)]:
        w, keep = _rand_w(rng, k, n, tile, p)
        bs = BlockSparseWeights.from_dense(w, tile, keep)
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        ref = x.astype(np.int64) @ bs.to_dense().astype(np.int64)
        y = bs.gemm_int(x)
        assert y.dtype == np.int32 and y.shape == (m, n)
        assert np.array_equal(y, ref)


def test_gemm_int_extremes_k1536():
    for val_x, val_w in [(-128, -128), (127, -128), (-128, 127), (127, 127)]:
        x = np.full((3, 1536), val_x, dtype=np.int8)
        w = np.full((1536, 16), val_w, dtype=np.int8)
        bs = BlockSparseWeights.from_dense(w, (8, 8))
        y = bs.gemm_int(x)
        assert (y == val_x * val_w * 1536).all()
    assert 128 * 128 * 1536 < 2**31


def test_gemm_int_rejects_wrong_input():
    bs = _good()
    with pytest.raises(ValueError):
        bs.gemm_int(np.zeros((2, 31), dtype=np.int8))
    with pytest.raises(ValueError):
        bs.gemm_int(np.zeros((2, 32), dtype=np.float32))


def _reference_gemm_benchmark():
    """``benchmarks/bench_reference_gemm.py`` as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_reference_gemm.py"
    spec = importlib.util.spec_from_file_location("bench_reference_gemm", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_benchmark_finds_the_dense_product_equal_to_the_per_pattern_one(tiny_package, capsys):
    """``benchmarks/bench_reference_gemm.py`` on a pruned package: every layer's two products agree (it raises
    otherwise) and it prints the ratio line."""
    bench = _reference_gemm_benchmark()
    assert bench.main(["--package", str(tiny_package), "--rows", "9", "--repeats", "1"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("all ")


def test_the_benchmark_refuses_a_missing_wav_before_any_work(tiny_package, tmp_path, capsys):
    bench = _reference_gemm_benchmark()
    argv = ["--package", str(tiny_package), "--wav", str(tmp_path / "missing.wav")]
    assert bench.main(argv) == 2
    out = capsys.readouterr()
    assert out.err.strip() == f"error: --wav {tmp_path / 'missing.wav'}: no such file" and out.out == ""
