"""Exact schedule model of the ``sasp_gemm`` kernel (numpy/stdlib only).

The model walks the kernel's loops at step granularity and reproduces its cycle counter exactly
(C-sim == model is tested). It also yields the order of the input stream words, which
``host.stream.pack_input`` uses: activations of chunk c+1 fill the input slots that the weight
loader leaves idle while chunk c computes, so the host must interleave them the same way.

Counter definition (see hls/README.md, "Cycle counter"):

* 1 cycle for the header word;
* per chunk: prologue loop (remaining activation words of the chunk, then the metadata and
  weights up to the first tile, one word per cycle) + ``D_LOAD``; compute loop (one iteration
  per cycle: tile steps of ``max(rows, STEP_MIN, words of the next tile unit)`` iterations and
  close stalls while the previous column block's output is still draining) + ``D_COMP``;
* the final output drain + ``D_OUT``.
"""

from __future__ import annotations

from typing import Iterator, List, NamedTuple, Sequence, Tuple, Union

import numpy as np

D_LOAD = 2  # prologue pipeline depth (stream read -> BRAM write)
D_OUT = 2  # drain pipeline depth (BRAM read -> stream write)
STEP_MIN = 4  # minimum iterations per tile step (accumulator read-modify-write distance)
HEADER_WORDS = 1

ArrayLike = Union[int, Tuple[int, int], Sequence[int]]


def d_comp(r: int, c: int) -> int:
    """Compute-loop pipeline depth: systolic skew ``R + C - 1`` plus one accumulator write."""
    return r + c


def array_rc(array: ArrayLike) -> Tuple[int, int]:
    """``8 -> (8, 8)``; ``(R, C) -> (R, C)``."""
    if isinstance(array, (int, np.integer)):
        return int(array), int(array)
    r, c = array
    return int(r), int(c)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def meta_words(nt: int) -> int:
    """Metadata words of a column block with ``nt`` tiles: header (nt + 3 kidx) + 4 kidx per word."""
    return 1 + _cdiv(max(nt - 3, 0), 4)


def words_per_tile(r: int, c: int) -> int:
    return (r * c) // 8


def act_words_per_row(k: int, r: int) -> int:
    """64-bit words per activation row: ``Kp = ceil(K/R)*R`` bytes rounded up to 8."""
    return _cdiv(_cdiv(k, r) * r, 8)


class Geometry(NamedTuple):
    r: int
    c: int
    kw: int  # activation words per row
    ww: int  # words per tile
    nb: int  # column blocks
    out_wpr: int  # output words per row per column block (C/2)


def geometry(k: int, n: int, array: ArrayLike) -> Geometry:
    r, c = array_rc(array)
    if (r * c) % 8 or c % 2:
        raise ValueError(f"array {r}x{c}: R*C must be a multiple of 8 and C even")
    return Geometry(r, c, act_words_per_row(k, r), words_per_tile(r, c), _cdiv(n, c), c // 2)


class _Seg(NamedTuple):
    """Per-chunk weight segment layout (identical for every chunk)."""

    seg_words: int
    u0: int  # words read in the prologue (leading metadata + tile 0 + trailing metadata)
    unit: List[int]  # unit[j] = words of tile j's weights + metadata up to tile j+1's weights
    events: List[Tuple[str, int]]  # ("step", tile j) / ("close", block b), in compute order


def _segment(nnz_per_colblock: Sequence[int], ww: int) -> _Seg:
    nts = [int(v) for v in nnz_per_colblock]
    nb = len(nts)
    mw = [meta_words(v) for v in nts]
    seg_words = sum(mw) + ww * sum(nts)
    unit: List[int] = []
    events: List[Tuple[str, int]] = []
    lead = 0  # metadata words before the first tile's weights
    b = 0
    while b < nb and nts[b] == 0:
        lead += mw[b]
        b += 1
    if b < nb:
        lead += mw[b]
    j = 0
    for b in range(nb):
        for t in range(nts[b]):
            extra = 0
            if t == nts[b] - 1:  # trailing metadata up to and including the next non-empty block
                b2 = b + 1
                while b2 < nb:
                    extra += mw[b2]
                    if nts[b2] > 0:
                        break
                    b2 += 1
            unit.append(ww + extra)
            events.append(("step", j))
            j += 1
        events.append(("close", b))
    u0 = lead + unit[0] if unit else seg_words
    return _Seg(seg_words, u0, unit, events)


class Slot(NamedTuple):
    """A run of input words: ``kind`` "act" (``count`` words of chunk ``chunk``) or "seg" (words
    ``start .. start+count-1`` of the weight segment), or "header"."""

    kind: str
    chunk: int
    start: int
    count: int


class Schedule(NamedTuple):
    cycles: int
    breakdown: dict
    slots: List[Slot]


def schedule(
    m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int, want_slots: bool = True
) -> Schedule:
    """Walk the kernel schedule; returns cycles, a breakdown and (optionally) the input word order."""
    g = geometry(k, n, array)
    if len(nnz_per_colblock) != g.nb:
        raise ValueError(f"nnz_per_colblock has {len(nnz_per_colblock)} entries, expected {g.nb}")
    if m < 1 or chunk < 1:
        raise ValueError("m and chunk must be >= 1")
    seg = _segment(nnz_per_colblock, g.ww)
    nch = _cdiv(m, chunk)
    rows = [min(chunk, m - c * chunk) for c in range(nch)]
    slots: List[Slot] = [Slot("header", -1, 0, HEADER_WORDS)] if want_slots else []
    dc = d_comp(g.r, g.c)
    bd = {"header": HEADER_WORDS, "prologue": 0, "steps": 0, "close_stall": 0, "drain": 0, "depth": 0}
    pend = 0
    act_left = rows[0] * g.kw  # words of the current chunk not read yet
    act_pos = 0  # words of the current chunk already read
    for ci, mr in enumerate(rows):
        # prologue: rest of this chunk's activations, then the weight segment up to tile 0
        pro = act_left + seg.u0
        if want_slots:
            if act_left:
                slots.append(Slot("act", ci, act_pos, act_left))
            slots.append(Slot("seg", ci, 0, seg.u0))
        pend -= min(pend, pro)
        bd["prologue"] += pro
        bd["depth"] += D_LOAD
        # compute loop
        nxt_total = rows[ci + 1] * g.kw if ci + 1 < nch else 0
        nxt_read = 0
        seg_pos = seg.u0
        ntiles = len(seg.unit)
        for kind, idx in seg.events:
            if kind == "step":
                u = seg.unit[idx + 1] if idx + 1 < ntiles else 0
                trip = max(mr, STEP_MIN, u)
                a = min(nxt_total - nxt_read, trip - u)
                if want_slots:
                    if u:
                        slots.append(Slot("seg", ci, seg_pos, u))
                    if a:
                        slots.append(Slot("act", ci + 1, nxt_read, a))
                seg_pos += u
                nxt_read += a
                pend -= min(pend, trip)
                bd["steps"] += trip
            else:
                s = pend
                a = min(nxt_total - nxt_read, s)
                if want_slots and a:
                    slots.append(Slot("act", ci + 1, nxt_read, a))
                nxt_read += a
                bd["close_stall"] += s
                pend = mr * g.out_wpr
        bd["depth"] += dc
        act_left = nxt_total - nxt_read
        act_pos = nxt_read
    bd["drain"] = pend
    bd["depth"] += D_OUT
    cycles = sum(bd.values())
    return Schedule(int(cycles), bd, slots)


def kernel_cycles(m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int) -> int:
    """Cycles the kernel's counter reports for ``Y[m, n] = X[m, k] W`` (exact)."""
    return schedule(m, k, n, nnz_per_colblock, array, chunk, want_slots=False).cycles


def cycle_breakdown(m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int) -> dict:
    """Cycle components: header, prologue, steps, close_stall, drain, depth (sum == kernel_cycles)."""
    return dict(schedule(m, k, n, nnz_per_colblock, array, chunk, want_slots=False).breakdown)


class StreamBytes(NamedTuple):
    input: int
    output: int

    @property
    def total(self) -> int:
        return self.input + self.output


def input_words(m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int) -> int:
    """64-bit input stream words: header + all activations + the weight segment once per chunk."""
    g = geometry(k, n, array)
    seg = sum(meta_words(int(v)) for v in nnz_per_colblock) + g.ww * int(np.sum(nnz_per_colblock))
    return HEADER_WORDS + m * g.kw + _cdiv(m, chunk) * seg


def output_words(m: int, n: int, array: ArrayLike) -> int:
    """64-bit output words: ``M * N_blocks * C/2`` (two int32 per word, padded columns included)."""
    r, c = array_rc(array)
    return m * _cdiv(n, c) * (c // 2)


def stream_bytes(m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int) -> StreamBytes:
    """Bytes moved by the DMA per GEMM (in: MM2S, out: S2MM)."""
    return StreamBytes(8 * input_words(m, k, n, nnz_per_colblock, array, chunk), 8 * output_words(m, n, array))


def dense_nnz(k: int, n: int, array: ArrayLike) -> List[int]:
    """``nnz_per_colblock`` of a dense matrix."""
    r, c = array_rc(array)
    return [_cdiv(k, r)] * _cdiv(n, c)


def utilization(m: int, k: int, n: int, nnz_per_colblock: Sequence[int], array: ArrayLike, chunk: int) -> float:
    """Useful MACs (stored tiles only, padded tile size) / (cycles * R * C)."""
    r, c = array_rc(array)
    macs = m * int(np.sum(nnz_per_colblock)) * r * c
    return macs / (kernel_cycles(m, k, n, nnz_per_colblock, array, chunk) * r * c)


def iter_shapes() -> Iterator[Tuple[str, int, int]]:
    """Whisper tiny.en GEMM shapes (name, K, N); d_model = 384."""
    yield "conv1 (im2col)", 240, 384
    yield "conv2 (im2col)", 1152, 384
    yield "q/k/v/out", 384, 384
    yield "fc1", 384, 1536
    yield "fc2", 1536, 384
