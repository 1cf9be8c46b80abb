"""Data layout of the ``sasp_gemm`` v2 kernel (numpy only; see hls/README.md, "Stream protocol").

The one packer and unpacker for every backend (C++ emulator, PYNQ DMA). All words are little-endian uint64.

Input AXI4-Stream (per call, the only per-call packing)::

    header            1 word: magic 'SASP' | version 2 << 32 | R << 40 | C << 48
    per row           1 word float32 row scale (low half), then KW = K_blocks*R/8 words of int8 (K zero-padded)

Weight segment (m_axi ``wmem``, built once per layer and kept resident), per column block::

    [nt] [ceil(nt/4) words of 4 x 16-bit kidx] [C words: float32 scale | float32 bias << 32] [nt tiles x R*C/8 words]

Output AXI4-Stream: per chunk, per column block, per row, ``C/4`` words of 4 fp16 (epilogue on) or ``C/2``
words of 2 int32; TLAST on the last word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.cycle_model import geometry, input_words, meta_words, output_words
from host.kernel_spec import MAGIC, STREAM_VERSION
from host.quant import flush_subnormals


def header_word(r: int, c: int) -> int:
    return MAGIC | (STREAM_VERSION << 32) | (r << 40) | (c << 48)


def pack_input_into(dst: np.ndarray, x_q: np.ndarray, scale_x: np.ndarray, tile: Tuple[int, int]) -> int:
    """Write the input stream of ``x_q`` (int8[M, K]) with row scales into ``dst`` (uint64); returns its words."""
    x_q = np.asarray(x_q)
    m, k = x_q.shape
    if x_q.dtype != np.int8 or x_q.ndim != 2:
        raise ValueError(f"pack_input: expected int8[M, K], got {x_q.dtype}{list(x_q.shape)}")
    g = geometry(k, 1, tile)
    words = input_words(m, k, tile)
    if dst.size < words:
        raise ValueError(f"pack_input: buffer holds {dst.size} words, {words} needed")
    dst[0] = header_word(g.r, g.c)
    rows = dst[1:words].reshape(m, g.row_words)
    rows[:, 0] = flush_subnormals(scale_x).view(np.uint32)
    xb = rows[:, 1:].view(np.int8)  # the row's activation bytes
    xb[:, :k] = x_q
    if k < xb.shape[1]:
        xb[:, k:] = 0
    return words


def pack_input(x_q: np.ndarray, scale_x: np.ndarray, tile: Tuple[int, int]) -> np.ndarray:
    """Input stream words (uint64) for ``x_q`` with per-row scales ``scale_x``."""
    out = np.empty(input_words(int(np.shape(x_q)[0]), int(np.shape(x_q)[1]), tile), dtype="<u8")
    pack_input_into(out, x_q, scale_x, tile)
    return out


def weight_segment(w: BlockSparseWeights, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """uint64 words of the weight segment (metadata, epilogue parameters, tiles; column-block order)."""
    g = geometry(w.k, w.n, w.tile)
    nt = np.asarray(w.nnz_per_colblock, dtype=np.int64)
    params = np.zeros(g.nb * g.c, dtype="<u8")
    params[: w.n] = flush_subnormals(scale).view(np.uint32).astype(np.uint64)
    params[: w.n] |= flush_subnormals(bias).view(np.uint32).astype(np.uint64) << np.uint64(32)
    if nt.size and (nt == g.kb).all():  # dense (the attention's operands): equal blocks, one copy per part
        mwd = meta_words(g.kb)
        seg2 = np.zeros((g.nb, mwd + g.c + g.kb * g.ww), dtype="<u8")
        seg2[:, 0] = g.kb
        seg2[:, 1:mwd].view("<u2").reshape(g.nb, -1)[:, : g.kb] = np.arange(g.kb, dtype=np.uint16)
        seg2[:, mwd : mwd + g.c] = params.reshape(g.nb, g.c)
        seg2[:, mwd + g.c :] = np.ascontiguousarray(w.tiles).reshape(-1).view("<u8").reshape(g.nb, -1)
        return seg2.reshape(-1)
    mw = meta_words(nt)
    blk_words = mw + g.c + nt * g.ww
    off = np.zeros(g.nb + 1, dtype=np.int64)
    np.cumsum(blk_words, out=off[1:])
    seg = np.zeros(int(off[-1]), dtype="<u8")
    seg[off[:-1]] = nt.astype(np.uint64)
    cp = np.asarray(w.colptr, dtype=np.int64)
    blk = np.repeat(np.arange(g.nb), nt)  # column block of each stored tile
    local = np.arange(cp[-1]) - cp[blk]  # index of the tile inside its block
    seg.view("<u2")[4 * (off[blk] + 1) + local] = np.asarray(w.kidx, dtype=np.uint16)
    pstart = off[:-1] + mw
    seg[(pstart[:, None] + np.arange(g.c)).reshape(-1)] = params
    if cp[-1]:
        tstart = pstart[blk] + g.c + local * g.ww
        tiles = np.ascontiguousarray(w.tiles).reshape(-1).view("<u8").reshape(-1, g.ww)
        seg[(tstart[:, None] + np.arange(g.ww)).reshape(-1)] = tiles.reshape(-1)
    return seg


@dataclass(eq=False)
class GemmOperand:
    """The kernel's right-hand side: block-sparse int8 weights with their per-column scale and bias.

    ``segment`` (the weight segment words) is built on first use and kept: for a model layer that is once per
    load, and the board keeps it resident in DDR."""

    w: BlockSparseWeights
    scale: np.ndarray
    bias: np.ndarray
    resident: bool = True  # False: built per call (attention), the board copies it into a scratch buffer
    _segment: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def segment(self) -> np.ndarray:
        if self._segment is None:
            self._segment = weight_segment(self.w, self.scale, self.bias)
        return self._segment

    def columns(self, lo: int, hi: int, w: BlockSparseWeights) -> GemmOperand:
        """The operand restricted to columns ``lo:hi`` whose weights are ``w``."""
        return GemmOperand(w, self.scale[lo:hi], self.bias[lo:hi], self.resident)


def unpack_output(
    words: np.ndarray, m: int, n: int, tile, chunk: int, fp16: bool = True, out: Optional[np.ndarray] = None
) -> np.ndarray:
    """float16[m, n] (epilogue) or int32[m, n] from the output stream words: one strided copy per chunk that
    moves each row's C values of a column block as one element (block-major -> row-major), then a view.
    ``out``: a reused array of at least ``[m, ceil(n/C)*C]`` of that dtype to copy into (no new pages)."""
    g = geometry(1, n, tile)
    words = np.ascontiguousarray(words, dtype="<u8")
    exp = output_words(m, n, tile, fp16)
    if words.size != exp:
        raise ValueError(f"unpack_output: got {words.size} words, expected {exp} for M={m} N={n} tile {tile}")
    dt = np.dtype("<f2" if fp16 else "<i4")
    group = np.dtype((np.void, g.c * dt.itemsize))  # one row of one column block
    vals = words.view(group)
    if out is None:
        out = np.empty((m, g.nb * g.c), dtype=dt)
    if out.dtype != dt or out.shape[0] < m or out.shape[1] < g.nb * g.c or not out.flags.c_contiguous:
        raise ValueError(f"unpack_output: out must be a C-contiguous {dt}[>={m}, >={g.nb * g.c}] array")
    y = out[:m].reshape(-1)[: m * g.nb * g.c].view(group).reshape(m, g.nb)
    for r0 in range(0, m, chunk):  # chunk by chunk: each transpose stays in the CPU's caches
        mr = min(chunk, m - r0)
        y[r0 : r0 + mr] = vals[r0 * g.nb : (r0 + mr) * g.nb].reshape(g.nb, mr).T
    return y.view(dt).reshape(m, g.nb * g.c)[:, :n]
