"""Closed-form schedule model of the ``sasp_gemm`` v2 kernel (numpy only).

The kernel's ``compute`` process paces itself so that no other dataflow process can stall it (see
hls/README.md, "Schedule"), and counts its iterations plus named pipeline depths: that count is the
``cycles`` register, and this module reproduces it exactly (C-sim == model is tested) without walking
the schedule. Per chunk of ``mr`` rows and per column block with ``nt`` stored tiles::

    S    = max(mr, STEP_MIN, WW)                        iterations per tile step (WW = R*C/8 words per tile)
    lead = 1 + ceil(nt/4) + C + (WW if nt else 0)       the weight loader's words before the first tile is in
    T_b  = max(lead + (nt*S if nt else mr), mr*OW + D_DRAIN)     OW = C/4 (fp16 output) or C/2 (int32)

    cycles = 1 + mr_0*(1 + KW) + D_ACT                  header + chunk 0's activation load (exposed)
           + sum over chunks of max(sum_b T_b, next chunk's activation load) + D_COMP
           + mr_last*OW + D_DRAIN                       the last block's output

The constants are read from ``hls/src/sasp_gemm.h``, their one owner.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Sequence, Tuple, Union

import numpy as np

HEADER_H = Path(__file__).resolve().parents[1] / "hls" / "src" / "sasp_gemm.h"


def _kernel_constants() -> Dict[str, int]:
    text = HEADER_H.read_text()
    out = {}
    for name in ("STEP_MIN", "D_ACT", "D_COMP", "D_DRAIN"):
        m = re.search(rf"#define SASP_{name} (\d+)", text)
        if not m:
            raise RuntimeError(f"{HEADER_H}: SASP_{name} not defined")
        out[name] = int(m.group(1))
    return out


_K = _kernel_constants()
STEP_MIN, D_ACT, D_COMP, D_DRAIN = _K["STEP_MIN"], _K["D_ACT"], _K["D_COMP"], _K["D_DRAIN"]
HEADER_WORDS = 1

ArrayLike = Union[int, Tuple[int, int], Sequence[int]]


def array_rc(array: ArrayLike) -> Tuple[int, int]:
    """``8 -> (8, 8)``; ``(R, C) -> (R, C)``."""
    if isinstance(array, (int, np.integer)):
        return int(array), int(array)
    r, c = array
    return int(r), int(c)


def check_array(array: ArrayLike) -> Tuple[int, int]:
    """``(R, C)`` if the kernel can be built for it (R a multiple of 8, C a multiple of 4, both >= 8)."""
    r, c = array_rc(array)
    if r < 8 or r % 8 or c < 8 or c % 4:
        raise ValueError(f"array {r}x{c}: the kernel needs R a multiple of 8 and C a multiple of 4 (both >= 8)")
    return r, c


def _cdiv(a, b):
    return -(-a // b)


def meta_words(nt):
    """Metadata words of a column block with ``nt`` tiles: the count, then 4 x 16-bit kidx per word."""
    return 1 + _cdiv(nt, 4)


class Geometry(NamedTuple):
    r: int
    c: int
    kb: int  # K-blocks (K padded to a multiple of R)
    kw: int  # activation words per row (without the scale word)
    ww: int  # words per tile
    nb: int  # column blocks

    @property
    def row_words(self) -> int:
        """Input stream words per activation row: the float32 scale word, then ``kw`` words of int8."""
        return 1 + self.kw

    def out_words_per_row(self, fp16: bool) -> int:
        """Output words per row per column block: 4 fp16 or 2 int32 per word."""
        return self.c // 4 if fp16 else self.c // 2


def geometry(k: int, n: int, array: ArrayLike) -> Geometry:
    return _geometry(int(k), int(n), array_rc(array))


@lru_cache(maxsize=4096)
def _geometry(k: int, n: int, array: Tuple[int, int]) -> Geometry:
    r, c = check_array(array)
    kb = _cdiv(k, r)
    return Geometry(r, c, kb, kb * r // 8, r * c // 8, _cdiv(n, c))


def _nts(nnz_per_colblock: Sequence[int], g: Geometry) -> np.ndarray:
    nt = np.asarray(nnz_per_colblock, dtype=np.int64).reshape(-1)
    if nt.size != g.nb:
        raise ValueError(f"nnz_per_colblock has {nt.size} entries, expected {g.nb}")
    if nt.size and (nt.min() < 0 or nt.max() > g.kb):
        raise ValueError(f"tile counts must lie in [0, {g.kb}]")
    return nt


def _chunk_rows(m: int, chunk: int) -> np.ndarray:
    if m < 1 or chunk < 1:
        raise ValueError("m and chunk must be >= 1")
    rows = np.full(m // chunk, chunk, dtype=np.int64)
    return np.append(rows, m % chunk) if m % chunk else rows


def _block_iters(nt: np.ndarray, mr: int, g: Geometry, ow: int) -> int:
    """Sum over column blocks of T_b for a chunk of ``mr`` rows."""
    s = max(mr, STEP_MIN, g.ww)
    lead = 1 + _cdiv(nt, 4) + g.c + np.where(nt > 0, g.ww, 0)
    work = np.where(nt > 0, nt * s, mr)
    return int(np.maximum(lead + work, mr * ow + D_DRAIN).sum())


def cycle_breakdown(
    m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int, fp16: bool = True
) -> Dict[str, int]:
    """Components of the cycle counter: header, act_load0, blocks, act_wait, drain, depth (sum == cycles)."""
    g = geometry(k, n, array)
    nt = _nts(nnz_per_colblock, g)
    rows = _chunk_rows(m, chunk)
    ow = g.out_words_per_row(fp16)
    memo: Dict[int, int] = {}
    blocks = wait = 0
    for ci, mr in enumerate(rows.tolist()):
        if mr not in memo:
            memo[mr] = _block_iters(nt, mr, g, ow)
        nxt = int(rows[ci + 1]) * g.row_words + D_ACT if ci + 1 < rows.size else 0
        blocks += memo[mr]
        wait += max(0, nxt - memo[mr])
    return {
        "header": HEADER_WORDS,
        "act_load0": int(rows[0]) * g.row_words,
        "blocks": blocks,
        "act_wait": wait,
        "drain": int(rows[-1]) * ow,
        "depth": D_ACT + int(rows.size) * D_COMP + D_DRAIN,
    }


def kernel_cycles(
    m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int, fp16: bool = True
) -> int:
    """Cycles the kernel's schedule counter reports for ``Y[m, n] = X[m, k] W`` (exact)."""
    return sum(cycle_breakdown(m, k, n, nnz_per_colblock, array, chunk, fp16).values())


class StreamBytes(NamedTuple):
    input: int  # AXI4-Stream in (MM2S DMA): header + activation rows
    output: int  # AXI4-Stream out (S2MM DMA)
    weights: int  # m_axi reads of the weight segment (once per chunk)

    @property
    def total(self) -> int:
        return self.input + self.output + self.weights


def input_words(m: int, k: int, array: ArrayLike) -> int:
    """64-bit input stream words: header + per row a scale word and the int8 activations."""
    g = geometry(k, 1, array)
    return HEADER_WORDS + m * g.row_words


def output_words(m: int, n: int, array: ArrayLike, fp16: bool = True) -> int:
    """64-bit output words: ``M * N_blocks * OW`` (padded columns included)."""
    g = geometry(1, n, array)
    return m * g.nb * g.out_words_per_row(fp16)


def segment_words(k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike) -> int:
    """64-bit words of the weight segment: per column block metadata, C parameter words and its tiles."""
    g = geometry(k, n, array)
    nt = _nts(nnz_per_colblock, g)
    return int((meta_words(nt) + g.c + nt * g.ww).sum())


def stream_bytes(
    m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int, fp16: bool = True
) -> StreamBytes:
    """Bytes moved between DDR and the kernel per GEMM: DMA in, DMA out, and the weight reads."""
    return StreamBytes(
        8 * input_words(m, k, array),
        8 * output_words(m, n, array, fp16),
        8 * segment_words(k, n, nnz_per_colblock, array) * _cdiv(m, chunk),
    )


def dense_nnz(k: int, n: int, array: ArrayLike) -> list:
    """``nnz_per_colblock`` of a dense matrix."""
    r, c = array_rc(array)
    return [_cdiv(k, r)] * _cdiv(n, c)


def column_slabs(n: int, array: ArrayLike, n_max: int) -> List[Tuple[int, int]]:
    """``[(first, end)]`` column-block ranges of the kernel runs that a GEMM of ``n`` columns takes: slabs of
    whole column blocks, at most ``n_max`` columns each (at least one block). ``host.driver`` cuts weights wider
    than a backend's N limit this way and ``host.system_model`` cuts recorded calls at the board's N_max."""
    blocks, per = _cdiv(n, array_rc(array)[1]), max(1, n_max // array_rc(array)[1])
    return [(b0, min(blocks, b0 + per)) for b0 in range(0, blocks, per)]


def utilization(
    m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int, fp16: bool = True
) -> float:
    """Useful MACs (stored tiles only, padded tile size) / (cycles * R * C)."""
    r, c = array_rc(array)
    macs = m * int(np.sum(nnz_per_colblock)) * r * c
    return macs / (kernel_cycles(m, k, n, nnz_per_colblock, array, chunk, fp16) * r * c)


def iter_shapes() -> Iterator[Tuple[str, int, int]]:
    """Whisper tiny.en GEMM shapes (name, K, N); d_model = 384."""
    yield "conv1 (im2col)", 240, 384
    yield "conv2 (im2col)", 1152, 384
    yield "q/k/v/out", 384, 384
    yield "fc1", 384, 1536
    yield "fc2", 1536, 384
