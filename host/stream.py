"""AXI4-Stream word protocol of the ``sasp_gemm`` kernel (numpy only; see hls/README.md).

One module packs the input stream and unpacks the output stream for every backend (the C++
emulator and the PYNQ DMA backend). All words are little-endian uint64.

Input stream::

    header                      1 word: magic 'SASP' | version << 32 | R << 40 | C << 48
    per chunk c (rows c*chunk .. min(M, (c+1)*chunk)-1):
        activations             rows x KW words, row-major, 8 int8 per word (K zero-padded to KW*8)
        weight segment          per column block: metadata words, then its tiles (R*C/8 words each,
                                row-major int8); metadata = [nt | kidx0<<16 | kidx1<<32 | kidx2<<48]
                                followed by ceil((nt-3)/4) words of 4 x 16-bit kidx
    The activations of chunk c+1 are interleaved into the weight segment of chunk c exactly in the
    input slots the kernel leaves free (order from host.cycle_model.schedule).

Output stream: per chunk, per column block, per row, C/2 words ``y[2q] | y[2q+1] << 32`` (int32);
TLAST on the last word.
"""

from __future__ import annotations

from functools import lru_cache
from typing import List, Tuple

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.cycle_model import array_rc, geometry, input_words, meta_words, output_words, schedule

MAGIC = 0x50534153  # b"SASP" little-endian
STREAM_VERSION = 1


def header_word(r: int, c: int) -> int:
    return MAGIC | (STREAM_VERSION << 32) | (r << 40) | (c << 48)


def _act_words(x_q: np.ndarray, kw: int) -> np.ndarray:
    m, k = x_q.shape
    xp = np.zeros((m, kw * 8), dtype=np.int8)
    xp[:, :k] = x_q
    return xp.view("<u8").reshape(m, kw)


def weight_segment(w: BlockSparseWeights) -> np.ndarray:
    """uint64 words of the per-chunk weight segment (metadata + tiles, column-block order)."""
    r, c = w.tile
    ww = r * c // 8
    nts = w.nnz_per_colblock
    tiles = np.ascontiguousarray(w.tiles).reshape(-1).view("<u8").reshape(-1, ww)
    parts: List[np.ndarray] = []
    cp = np.asarray(w.colptr, dtype=np.int64)
    kidx = np.asarray(w.kidx, dtype=np.uint64)
    for b, nt in enumerate(nts):
        nt = int(nt)
        mw = meta_words(nt)
        fields = np.zeros(mw * 4, dtype=np.uint64)
        fields[0] = nt
        fields[1 : 1 + nt] = kidx[cp[b] : cp[b + 1]]
        f = fields.reshape(mw, 4)
        meta = f[:, 0] | (f[:, 1] << np.uint64(16)) | (f[:, 2] << np.uint64(32)) | (f[:, 3] << np.uint64(48))
        parts.append(meta)
        if nt:
            parts.append(tiles[cp[b] : cp[b + 1]].reshape(-1))
    return np.concatenate(parts).astype("<u8") if parts else np.zeros(0, dtype="<u8")


@lru_cache(maxsize=256)
def _slots(m: int, k: int, n: int, nnz: Tuple[int, ...], rc: Tuple[int, int], chunk: int) -> tuple:
    """The schedule's stream slots, memoized: decoder layers repeat the same (M=1) call every token."""
    return tuple(schedule(m, k, n, nnz, rc, chunk).slots)


def pack_input(x_q: np.ndarray, w: BlockSparseWeights, chunk: int) -> np.ndarray:
    """Input stream words (uint64) for ``Y = x_q @ W`` with ``chunk`` rows per on-chip chunk."""
    x_q = np.asarray(x_q)
    if x_q.dtype != np.int8 or x_q.ndim != 2 or x_q.shape[1] != w.k:
        raise ValueError(f"pack_input: expected int8[M, {w.k}], got {x_q.dtype}{list(x_q.shape)}")
    r, c = w.tile
    m = x_q.shape[0]
    g = geometry(w.k, w.n, (r, c))
    acts = _act_words(x_q, g.kw).reshape(-1)
    seg = w.__dict__.get("_segment_cache")
    if seg is None:  # the weight part of the stream depends on the weights only: pack it once per layer
        seg = w.__dict__["_segment_cache"] = weight_segment(w)
    parts: List[np.ndarray] = []
    for s in _slots(m, w.k, w.n, tuple(int(v) for v in w.nnz_per_colblock), (r, c), chunk):
        if s.kind == "header":
            parts.append(np.array([header_word(r, c)], dtype="<u8"))
        elif s.kind == "act":
            base = s.chunk * chunk * g.kw + s.start
            parts.append(acts[base : base + s.count])
        else:
            parts.append(seg[s.start : s.start + s.count])
    out = np.concatenate(parts)
    assert out.size == input_words(m, w.k, w.n, w.nnz_per_colblock, (r, c), chunk)
    return out


def expected_input_words(m: int, w: BlockSparseWeights, chunk: int) -> int:
    return input_words(m, w.k, w.n, w.nnz_per_colblock, w.tile, chunk)


def expected_output_words(m: int, n: int, tile) -> int:
    """Output words for ``Y[m, n]`` on an array/tile ``(R, C)`` (or int)."""
    return output_words(m, n, tile)


def unpack_output(words: np.ndarray, m: int, n: int, tile, chunk: int) -> np.ndarray:
    """int32[m, n] from the output stream words."""
    r, c = array_rc(tile)
    words = np.ascontiguousarray(words, dtype="<u8")
    exp = output_words(m, n, (r, c))
    if words.size != exp:
        raise ValueError(f"unpack_output: got {words.size} words, expected {exp} for M={m} N={n} tile {r}x{c}")
    nb = -(-n // c)
    y = np.empty((m, nb * c), dtype=np.int32)
    pos = 0
    for r0 in range(0, m, chunk):
        mr = min(chunk, m - r0)
        cnt = mr * nb * (c // 2)
        blk = words[pos : pos + cnt].view("<i4").reshape(nb, mr, c)
        y[r0 : r0 + mr] = blk.transpose(1, 0, 2).reshape(mr, nb * c)
        pos += cnt
    return np.ascontiguousarray(y[:, :n])
