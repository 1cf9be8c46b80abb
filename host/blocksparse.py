"""Block-compressed int8 weights for the systolic-array kernel (numpy only).

``W[K, N]`` (int8) is cut into ``R x C`` tiles on the zero-padded ``Kp x Np`` matrix
(``Kp = ceil(K/R)*R``, ``Np = ceil(N/C)*C``). Column block ``nb`` (columns ``nb*C .. nb*C+C-1``)
keeps the tiles ``colptr[nb] .. colptr[nb+1]-1``; tile ``t`` covers rows ``kidx[t]*R ..`` of that
column block. ``kidx`` is strictly increasing inside a column block. Pruned tiles are absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

EXACT_ROWS = 1024  # K-rows per float32 partial product: |partial sum| <= 1024 * 128 * 128 = 2**24 stays exact


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class BlockSparseWeights:
    """BSR over column blocks: ``tiles`` int8[nnz, R, C], ``colptr`` int32[N_blocks+1], ``kidx`` int32[nnz]."""

    tiles: np.ndarray
    colptr: np.ndarray
    kidx: np.ndarray
    k: int
    n: int
    tile: Tuple[int, int]

    # ---- shape helpers -------------------------------------------------------------------------
    @property
    def k_blocks(self) -> int:
        return _ceil_div(int(self.k), int(self.tile[0]))

    @property
    def n_blocks(self) -> int:
        return _ceil_div(int(self.n), int(self.tile[1]))

    @property
    def nnz_tiles(self) -> int:
        """Number of stored (unpruned) tiles."""
        return int(self.tiles.shape[0])

    @property
    def total_tiles(self) -> int:
        """Tiles of the padded dense matrix, ``K_blocks * N_blocks``."""
        return self.k_blocks * self.n_blocks

    @property
    def nnz_per_colblock(self) -> np.ndarray:
        """int64[N_blocks]: stored tiles per column block."""
        return np.diff(np.asarray(self.colptr, dtype=np.int64))

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_dense(
        cls, w_q: np.ndarray, tile: Tuple[int, int], keep: Optional[np.ndarray] = None
    ) -> BlockSparseWeights:
        """Compress ``w_q`` int8[K, N]. ``keep`` bool[K_blocks, N_blocks] selects the stored tiles;
        ``None`` keeps every tile with a nonzero element (tiles outside ``keep`` are dropped even if nonzero)."""
        w_q = np.asarray(w_q)
        if w_q.dtype != np.int8 or w_q.ndim != 2:
            raise ValueError(f"from_dense: expected int8[K, N], got {w_q.dtype}{list(w_q.shape)}")
        r, c = int(tile[0]), int(tile[1])
        if r < 1 or c < 1:
            raise ValueError(f"from_dense: bad tile {tile}")
        k, n = w_q.shape
        kb, nb = _ceil_div(k, r), _ceil_div(n, c)
        wp = np.zeros((kb * r, nb * c), dtype=np.int8)
        wp[:k, :n] = w_q
        blocks = wp.reshape(kb, r, nb, c).transpose(2, 0, 1, 3)  # [nb, kb, r, c]
        if keep is None:
            mask = blocks.reshape(nb, kb, r * c).any(axis=2)  # [nb, kb]
        else:
            keep = np.asarray(keep, dtype=bool)
            if keep.shape != (kb, nb):
                raise ValueError(f"from_dense: keep must be bool[{kb}, {nb}], got {list(keep.shape)}")
            mask = keep.T
        counts = mask.sum(axis=1)
        colptr = np.zeros(nb + 1, dtype=np.int32)
        np.cumsum(counts, out=colptr[1:])
        nbi, kbi = np.nonzero(mask)  # row-major over [nb, kb]: column block order, kidx ascending
        tiles = np.ascontiguousarray(blocks[nbi, kbi])
        return cls(tiles=tiles, colptr=colptr, kidx=kbi.astype(np.int32), k=int(k), n=int(n), tile=(r, c))

    def to_dense(self) -> np.ndarray:
        """int8[K, N] with pruned tiles as zeros."""
        r, c = self.tile
        kb, nb = self.k_blocks, self.n_blocks
        blocks = np.zeros((kb, nb, r, c), dtype=np.int8)
        col = np.repeat(np.arange(nb), self.nnz_per_colblock)
        blocks[np.asarray(self.kidx, dtype=np.int64), col] = self.tiles
        return np.ascontiguousarray(blocks.transpose(0, 2, 1, 3).reshape(kb * r, nb * c)[: self.k, : self.n])

    # ---- checks --------------------------------------------------------------------------------
    def validate(self, name: str = "weights") -> None:
        """Raise ``ValueError`` naming ``name`` and the fault if the arrays are inconsistent."""

        def fail(msg: str) -> None:
            raise ValueError(f"{name}: {msg}")

        if not (isinstance(self.tile, tuple) and len(self.tile) == 2):
            fail(f"tile must be a (R, C) tuple, got {self.tile!r}")
        r, c = (int(v) for v in self.tile)
        if r < 1 or c < 1:
            fail(f"tile sizes must be positive, got {self.tile}")
        if int(self.k) < 1 or int(self.n) < 1:
            fail(f"k and n must be positive, got k={self.k} n={self.n}")
        t, cp, ki = self.tiles, self.colptr, self.kidx
        for arr, nm, dt in ((t, "tiles", np.int8), (cp, "colptr", np.int32), (ki, "kidx", np.int32)):
            if not isinstance(arr, np.ndarray):
                fail(f"{nm} must be a numpy array, got {type(arr).__name__}")
            if arr.dtype != dt:
                fail(f"{nm} has dtype {arr.dtype}, expected {np.dtype(dt).name}")
        if t.ndim != 3 or t.shape[1:] != (r, c):
            fail(f"tiles has shape {list(t.shape)}, expected [nnz, {r}, {c}]")
        nb, kb = self.n_blocks, self.k_blocks
        if cp.shape != (nb + 1,):
            fail(f"colptr has shape {list(cp.shape)}, expected [{nb + 1}] (N_blocks + 1)")
        nnz = t.shape[0]
        if ki.shape != (nnz,):
            fail(f"kidx has shape {list(ki.shape)}, expected [{nnz}] (one per tile)")
        if cp[0] != 0:
            fail(f"colptr[0] = {int(cp[0])}, expected 0")
        d = np.diff(cp.astype(np.int64))
        if (d < 0).any():
            bad = int(np.argmax(d < 0))
            fail(f"colptr is not monotone: colptr[{bad}]={int(cp[bad])} > colptr[{bad + 1}]={int(cp[bad + 1])}")
        if cp[-1] != nnz:
            fail(f"colptr[-1] = {int(cp[-1])} != number of tiles {nnz}")
        if nnz:
            if ki.min() < 0 or ki.max() >= kb:
                bad = int(np.argmax((ki < 0) | (ki >= kb)))
                fail(f"kidx[{bad}] = {int(ki[bad])} out of range [0, {kb})")
            if (d > kb).any():
                fail(f"a column block holds more than K_blocks={kb} tiles")
            step = np.diff(ki.astype(np.int64))
            starts = np.zeros(nnz, dtype=bool)
            starts[cp[:-1][d > 0]] = True  # first tile of each non-empty column block
            bad = np.nonzero((step <= 0) & ~starts[1:])[0]
            if bad.size:
                i = int(bad[0]) + 1
                what = "duplicate" if step[i - 1] == 0 else "unsorted"
                fail(f"{what} kidx in a column block: kidx[{i - 1}]={int(ki[i - 1])}, kidx[{i}]={int(ki[i])}")

    # ---- exact reference -----------------------------------------------------------------------
    def gemm_int(self, x_q: np.ndarray) -> np.ndarray:
        """Exact ``int32[M, N] = x_q[M, K] @ W``, the kernel's accumulation.

        The stored tiles are expanded once into a dense float32 ``W`` (pruned tiles as zeros, cached on the object)
        and multiplied over at most ``EXACT_ROWS`` = 1024 K-rows at a time: every product and every partial sum is
        an integer of magnitude <= 1024 * 128 * 128 = 2**24, which float32 represents exactly in any summation
        order, so the int32 total equals the kernel's. The zeros cost products here that the kernel skips (its
        cycles come from the cycle model): one BLAS product of the whole matrix beats one small product per pattern
        of kept tiles, of which free tile choice makes tens per layer (``benchmarks/bench_reference_gemm.py``).
        """
        x_q = np.asarray(x_q)
        if x_q.dtype != np.int8 or x_q.ndim != 2 or x_q.shape[1] != self.k:
            raise ValueError(f"gemm_int: expected int8[M, {self.k}], got {x_q.dtype}{list(x_q.shape)}")
        x = x_q.astype(np.float32)
        y = np.zeros((x.shape[0], self.n), dtype=np.int32)
        for lo, rows in self._float_rows():
            y += (x[:, lo : lo + rows.shape[0]] @ rows).astype(np.int32)
        return y

    def _float_rows(self) -> list:
        """The dense weights in float32 as ``(first row, rows)`` slabs of at most ``EXACT_ROWS`` rows, cached."""
        cached = self.__dict__.get("_float_rows_cache")
        if cached is None:
            w = self.to_dense().astype(np.float32)
            cached = self.__dict__["_float_rows_cache"] = [
                (lo, w[lo : lo + EXACT_ROWS]) for lo in range(0, self.k, EXACT_ROWS)
            ]
        return cached
