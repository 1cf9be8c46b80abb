"""Modeled FPGA resources of the sasp_gemm overlay (kernel + DMA shell) per array size and board (numpy-free).

``estimate_resources(array, board)`` returns DSP, BRAM36, LUT and FF for the whole overlay, whether it fits
the board's device, and ``label="modeled"``: these are estimates until someone runs the HLS/Vivado reports,
built from the kernel's storage declarations in hls/src/sasp_gemm.cpp and per-element costs of typical HLS
int8 MAC arrays. The model (also documented in overlay/README.md):

* DSP: ``R*C / macs_per_dsp`` -- one DSP48 per int8 MAC (the column dot product maps onto a DSP cascade);
  ``macs_per_dsp`` comes from host/data/boards.json (1: Vitis HLS does not pack two int8 MACs per DSP48E2).
* BRAM36: the double-buffered activation chunk ``act[2][CHUNK][K_MAX]`` int8, cyclically partitioned into
  ``max(R, 8)`` banks per buffer (8-bit wide, BRAM18 = 2048 x 9); the double-buffered accumulators
  ``acc[2][CHUNK][C]`` int32 (one BRAM18 per column and buffer); the kidx ring and per-block tile counts
  (one BRAM18 each); the AXI DMA's MM2S/S2MM data FIFOs (3 BRAM36 for 64-bit, 256-beat bursts).
* LUT/FF: per PE (30 LUT, 64 FF: operand/partial-sum pipeline registers and two stationary weight bytes), per
  column (64 LUT, 96 FF: 32-bit accumulate and drain mux), per activation bank (30 LUT, 16 FF: read mux and
  address), a fixed kernel part (3500 LUT, 4000 FF: AXI-Lite, stream adapters, loader, drainer, counters) and
  the shell (4000 LUT, 5700 FF: AXI DMA without SG, AXI-Lite and HP interconnects, processor reset).
* fits: DSP and BRAM36 at most 100 % of the device, LUT and FF at most 80 % (routability at the PL clock).
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

BOARDS_JSON = Path(__file__).resolve().parent / "data" / "boards.json"
K_MAX = 1536  # SA_K_MAX: largest Whisper tiny.en K (fc2)
ARRAY_SIZES = (4, 8, 12, 16, 32)
LUT_FF_LIMIT = 0.80  # fraction of LUT/FF considered routable at the PL clock

# per-element costs (see module docstring)
PE_LUT, PE_FF = 30, 64
COL_LUT, COL_FF = 64, 96
BANK_LUT, BANK_FF = 30, 16
KERNEL_LUT, KERNEL_FF = 3500, 4000
SHELL = {"DSP": 0, "BRAM36": 3.0, "LUT": 4000, "FF": 5700}

ArrayArg = Union[int, Tuple[int, int]]


@cache
def _boards_cached(path: str) -> Dict[str, dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)["boards"]


def load_boards(path: Optional[Union[str, Path]] = None) -> Dict[str, dict]:
    """All board profiles from host/data/boards.json (or ``path``)."""
    return _boards_cached(str(path or BOARDS_JSON))


def board_profile(board: str) -> dict:
    boards = load_boards()
    if board not in boards:
        raise ValueError(f"unknown board {board!r}; known boards: {sorted(boards)} (host/data/boards.json)")
    return boards[board]


def device_totals(board: str) -> Dict[str, int]:
    """Device resources of ``board``: DSP, BRAM36, LUT, FF."""
    return dict(board_profile(board)["resources"])


DEVICE_TOTALS = {name: dict(p["resources"]) for name, p in load_boards().items()}


def _rc(array: ArrayArg) -> Tuple[int, int]:
    if isinstance(array, int):
        return array, array
    r, c = array
    return int(r), int(c)


def _bram18_for(depth: int, width_bits: int) -> int:
    """BRAM18 primitives for one ``depth x width`` memory (widths 9/18/36 per 2048/1024/512 words)."""
    if width_bits <= 9:
        per = 2048
    elif width_bits <= 18:
        per = 1024
    else:
        per = 512
    lanes = max(1, math.ceil(width_bits / 36)) if width_bits > 36 else 1
    return lanes * math.ceil(depth / per)


def kernel_bram36(r: int, c: int, chunk: int, k_max: int = K_MAX) -> float:
    """BRAM36 of the kernel's storage: activation chunk buffers, accumulators, kidx ring and tile counts."""
    banks = max(r, 8)
    act = 2 * banks * _bram18_for(math.ceil(chunk * k_max / banks), 8)
    acc = 2 * c * _bram18_for(chunk, 32)
    small = 2  # kring[2*K_MAX/R] and ntb[N_MAX/C], uint16 each
    return (act + acc + small) / 2


def estimate_resources(
    array: ArrayArg, board: str, chunk: Optional[int] = None, k_max: int = K_MAX
) -> Dict[str, object]:
    """Modeled resources of the overlay for an ``array`` (``A`` or ``(R, C)``) systolic array on ``board``.

    Returns ``{"DSP", "BRAM36", "LUT", "FF", "fits", "limits", "utilization", "device", "array", "board",
    "chunk", "label": "modeled"}``; ``chunk`` defaults to the board's ``kernel_chunk`` (SA_CHUNK).
    """
    r, c = _rc(array)
    if r < 1 or c < 1 or (r * c) % 8 or c % 2:
        raise ValueError(f"array {r}x{c}: the kernel needs R*C a multiple of 8 and C even")
    prof = board_profile(board)
    chunk = int(chunk or prof["kernel_chunk"])
    dev = device_totals(board)
    pes = r * c
    banks = max(r, 8)
    est = {
        "DSP": math.ceil(pes / int(prof.get("macs_per_dsp", 1))) + SHELL["DSP"],
        "BRAM36": kernel_bram36(r, c, chunk, k_max) + SHELL["BRAM36"],
        "LUT": pes * PE_LUT + c * COL_LUT + banks * BANK_LUT + KERNEL_LUT + SHELL["LUT"],
        "FF": pes * PE_FF + c * COL_FF + banks * BANK_FF + KERNEL_FF + SHELL["FF"],
    }
    limits = {"DSP": 1.0, "BRAM36": 1.0, "LUT": LUT_FF_LIMIT, "FF": LUT_FF_LIMIT}
    util = {k: est[k] / dev[k] for k in est}
    over = [k for k in est if util[k] > limits[k]]
    return {
        **est,
        "fits": not over,
        "over": over,
        "limits": limits,
        "utilization": util,
        "device": dev,
        "array": (r, c),
        "board": board,
        "chunk": chunk,
        "label": "modeled",
    }


def resource_table(boards=("pynq-z2", "ultra96-v2"), arrays=ARRAY_SIZES) -> str:
    """Markdown table of the modeled resources (the one in overlay/README.md)."""
    lines = [
        "| board | array | DSP | BRAM36 | LUT | FF | fits |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in boards:
        for a in arrays:
            e = estimate_resources(a, b)
            u = e["utilization"]
            fits = "yes" if e["fits"] else "no (" + ", ".join(e["over"]) + ")"
            lines.append(
                f"| {b} | {a}x{a} | {e['DSP']} ({u['DSP']:.0%}) | {e['BRAM36']:g} ({u['BRAM36']:.0%}) | "
                f"{e['LUT']} ({u['LUT']:.0%}) | {e['FF']} ({u['FF']:.0%}) | {fits} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(resource_table())
