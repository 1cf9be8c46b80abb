"""Modeled FPGA resources of the sasp_gemm v2 overlay (kernel + DMA shell) per array shape and board (numpy-free).

``estimate_resources(array, board)`` returns DSP, BRAM36, LUT and FF for the whole overlay, whether it fits
the board's device, and ``label="modeled"``: estimates until someone runs ``make -C hls synth`` (whose report
check writes the real figures), built from the kernel's storage in hls/src/sasp_gemm.cpp and per-element costs
of typical HLS int8 MAC arrays. ``python -m host.resources`` prints the table for every board of
host/data/boards.json. The model:

* DSP: ``R*C / macs_per_dsp`` (one DSP48 per int8 MAC; ``macs_per_dsp`` from host/data/boards.json; two with
  ``dsp_pack`` on DSP48E2 devices, the kernel's ``SA_DSP_PACK`` build, Xilinx WP486) plus the
  fp16 epilogue: 4 lanes x 2 float multiplies x 3 DSP48 (the Floating-Point Operator's full-DSP
  single-precision multiplier, an assumption until csynth reports it); its adders are bound to fabric.
* BRAM36: the two activation chunk buffers (``stream_of_blocks``: ``CHUNK x K_MAX/R`` words of ``8R`` bits
  each), the accumulator rows FIFO (``2 x CHUNK`` words of ``32C`` bits), the accumulators (``C`` banks of
  ``CHUNK`` int32), the row-scale FIFO (one BRAM18), the m_axi read buffer (one BRAM36) and the AXI DMA's
  MM2S/S2MM data FIFOs (3 BRAM36 for 64-bit, 256-beat bursts).
* LUT/FF: per PE (30 LUT, 64 FF: operand/partial-sum pipeline registers and the tile register), per column
  (64 LUT, 96 FF: 32-bit accumulate and drain mux), the epilogue (2400 LUT, 3200 FF: int-to-float, float adds
  in fabric, fp16 rounding for 4 lanes), a fixed kernel part (4500 LUT, 5500 FF: AXI-Lite, stream and m_axi
  adapters, loaders, counters) and the shell (4500 LUT, 6500 FF: AXI DMA without SG, AXI-Lite and HP
  interconnects with three masters, processor reset).
* fits: DSP and BRAM36 at most 100 % of the device, LUT and FF at most 80 % (routability at the PL clock).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

from host.boards import all_boards, board_spec
from host.kernel_spec import K_MAX

ARRAY_SIZES = ((8, 8), (16, 8), (8, 16), (16, 12), (16, 16), (32, 32))  # what make -C hls csim-all tests
LUT_FF_LIMIT = 0.80  # fraction of LUT/FF considered routable at the PL clock

# per-element costs (see module docstring)
PE_LUT, PE_FF = 30, 64
COL_LUT, COL_FF = 64, 96
EPILOGUE = {"DSP": 4 * 2 * 3, "LUT": 2400, "FF": 3200}
KERNEL_LUT, KERNEL_FF = 4500, 5500
SHELL = {"DSP": 0, "BRAM36": 3.0, "LUT": 4500, "FF": 6500}

ArrayArg = Union[int, Tuple[int, int]]


def device_totals(board: str) -> Dict[str, int]:
    """Device resources of ``board``: DSP, BRAM36, LUT, FF."""
    return dict(board_spec(board).profile["resources"])


DEVICE_TOTALS = {b.key: device_totals(b.key) for b in all_boards()}


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
    """BRAM36 of the kernel's storage: activation chunk buffers, accumulator rows FIFO, accumulators, row-scale
    FIFO and the m_axi read buffer."""
    act = 2 * _bram18_for(chunk * (k_max // r), 8 * r)
    rows = _bram18_for(2 * chunk, 32 * c)
    acc = c * _bram18_for(chunk, 32)
    small = 1 + 2  # row-scale FIFO (BRAM18), m_axi read buffer (BRAM36)
    return (act + rows + acc + small) / 2


def estimate_resources(
    array: ArrayArg, board: str, chunk: Optional[int] = None, k_max: int = K_MAX, dsp_pack: bool = False
) -> Dict[str, object]:
    """Modeled resources of the overlay for an ``array`` (``A`` or ``(R, C)``) on ``board``.

    Returns ``{"DSP", "BRAM36", "LUT", "FF", "fits", "limits", "utilization", "device", "array", "board",
    "chunk", "label": "modeled"}``; ``chunk`` defaults to the board's ``kernel_chunk`` (SA_CHUNK).
    """
    r, c = _rc(array)
    if r < 8 or r % 8 or c < 8 or c % 4:
        raise ValueError(f"array {r}x{c}: the kernel needs R a multiple of 8 and C a multiple of 4 (both >= 8)")
    spec = board_spec(board)
    if dsp_pack and spec.family != "zynquplus":
        raise ValueError(f"{board}: two int8 MACs per DSP need the DSP48E2's 27-bit pre-adder (UltraScale+ only)")
    chunk = int(chunk or spec.kernel_chunk)
    dev = device_totals(spec.key)
    pes = r * c
    per_dsp = 2 if dsp_pack else int(spec.profile.get("macs_per_dsp", 1))
    est = {
        "DSP": math.ceil(pes / per_dsp) + EPILOGUE["DSP"] + SHELL["DSP"],
        "BRAM36": kernel_bram36(r, c, chunk, k_max) + SHELL["BRAM36"],
        "LUT": pes * PE_LUT + c * COL_LUT + EPILOGUE["LUT"] + KERNEL_LUT + SHELL["LUT"],
        "FF": pes * PE_FF + c * COL_FF + EPILOGUE["FF"] + KERNEL_FF + SHELL["FF"],
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
        "board": spec.key,
        "chunk": chunk,
        "dsp_pack": dsp_pack,
        "label": "modeled",
    }


PACKED_ARRAYS = ((16, 16), (16, 32))  # SA_DSP_PACK builds listed for the DSP48E2 boards


def resource_table(boards: Optional[Sequence[str]] = None, arrays: Sequence[ArrayArg] = ARRAY_SIZES) -> str:
    """Markdown table of the modeled resources of ``arrays`` on ``boards`` (default: every board), with the
    DSP-packed builds on DSP48E2 boards."""
    lines = [
        "| board | array | DSP | BRAM36 | LUT | FF | fits |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in boards or [spec.key for spec in all_boards()]:
        packed = PACKED_ARRAYS if board_spec(b).family == "zynquplus" else ()
        for a, pack in [(a, False) for a in arrays] + [(a, True) for a in packed]:
            e = estimate_resources(a, b, dsp_pack=pack)
            u = e["utilization"]
            fits = "yes" if e["fits"] else "no (" + ", ".join(e["over"]) + ")"
            r, c = _rc(a)
            name = f"{r}x{c}{' packed' if pack else ''}"
            lines.append(
                f"| {b} | {name} | {e['DSP']} ({u['DSP']:.0%}) | {e['BRAM36']:g} ({u['BRAM36']:.0%}) | "
                f"{e['LUT']} ({u['LUT']:.0%}) | {e['FF']} ({u['FF']:.0%}) | {fits} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    print(resource_table())
