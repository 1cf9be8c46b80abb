"""Modeled on-board latency and energy of one utterance (the paper's "system simulation").

Per GEMM the accelerator time is ``max(kernel cycles / PL clock, stream bytes / DMA bandwidth)`` plus a fixed
driver overhead per call (register writes, cache maintenance, DMA start): the kernel consumes and produces its
streams while it computes, so the two overlap and the slower one bounds the call. Kernel cycles come from
``host.cycle_model`` (equal to the C-sim counter), bytes from the same model of the stream protocol. Work left
on the board's CPU (features, attention, layer norms, GELU, quantization) is counted in floating-point operations
and divided by the board's effective numpy throughput. Every number comes from ``host/data/boards.json``;
every result is labelled ``modeled`` and carries its assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, List, Tuple

from host.cycle_model import dense_nnz, kernel_cycles, stream_bytes
from host.resources import board_profile

BOARD_ALIASES = {"ultra96v2": "ultra96-v2", "ultra96": "ultra96-v2", "pynqz2": "pynq-z2"}
STAGES = ("features", "encoder", "decoder")


def resolve_board(name: str) -> str:
    return BOARD_ALIASES.get(name.lower(), name.lower())


@dataclass(frozen=True)
class GemmCall:
    """One accelerator call: layer, rows, shape and stored tiles per column block."""

    stage: str
    layer: str
    m: int
    k: int
    n: int
    nnz: Tuple[int, ...]


def dense_calls(calls: List[GemmCall], array: int) -> List[GemmCall]:
    """The same calls with every tile present (the unpruned int8 model on the same array)."""
    return [GemmCall(c.stage, c.layer, c.m, c.k, c.n, tuple(dense_nnz(c.k, c.n, array))) for c in calls]


def skipped_calls(calls: List[GemmCall], layers: Iterable[str]) -> List[GemmCall]:
    """The same calls with every tile of ``layers`` pruned: the most that tile pruning of those layers can save
    (activations still stream in and bias-only outputs stream out)."""
    skip = set(layers)
    return [GemmCall(c.stage, c.layer, c.m, c.k, c.n, (0,) * len(c.nnz)) if c.layer in skip else c for c in calls]


@lru_cache(maxsize=65536)
def _gemm_cost(m: int, k: int, n: int, nnz: Tuple[int, ...], array: int, chunk: int) -> Tuple[int, int]:
    return kernel_cycles(m, k, n, nnz, array, chunk), stream_bytes(m, k, n, nnz, array, chunk).total


def host_flops(cfg: Dict[str, int], audio_ctx: int, n_tokens: int, attention_on_accel: bool = True) -> Dict[str, float]:
    """Floating-point work left on the CPU per stage (softmax, norms, GELU, (de)quantization, and the encoder's
    attention products unless they run on the accelerator)."""
    d, heads, ff = cfg["n_audio_state"], cfg["n_audio_head"], 4 * cfg["n_audio_state"]
    t = audio_ctx
    mel = 3000 * (400 * 9 * 2 + 201 * 80 * 2 + 30)  # windowed rFFT (~9 log2 n per point), mel product, log
    per_enc = (
        (0 if attention_on_accel else 4 * t * t * d)
        + 5 * heads * t * t
        + 2 * 10 * t * d
        + 10 * t * ff
        + 6 * 4 * t * d
        + 6 * t * (d + ff)
    )
    enc = cfg["n_audio_layer"] * per_enc + 10 * 2 * t * d + 3 * t * d
    per_tok = 0.0
    for pos in range(n_tokens):
        ctx = 3 + pos
        per_tok += cfg["n_text_layer"] * (4 * ctx * d + 4 * t * d + 5 * heads * (ctx + t) + 30 * d + 10 * ff)
        per_tok += 4 * cfg["n_vocab"]  # dequantize the logits and arg-max
    cross = cfg["n_text_layer"] * 2 * 6 * t * d
    return {"features": float(mel), "encoder": float(enc), "decoder": float(per_tok + cross)}


def model_latency(calls: Iterable[GemmCall], flops: Dict[str, float], board: str, array: int) -> dict:
    """Per-stage modeled seconds on ``board``: kernel, DMA, driver overhead, host CPU, total."""
    prof = board_profile(resolve_board(board))
    f_clk = prof["pl_clock_mhz"] * 1e6
    bw = prof["stream"]["bytes_per_s"]
    hm = prof["host_model"]
    stages = {
        s: {
            "kernel_s": 0.0,
            "dma_s": 0.0,
            "accel_s": 0.0,
            "overhead_s": 0.0,
            "host_s": 0.0,
            "calls": 0,
            "cycles": 0,
            "bytes": 0,
        }
        for s in STAGES
    }
    for c in calls:
        cycles, nbytes = _gemm_cost(c.m, c.k, c.n, c.nnz, array, prof["kernel_chunk"])
        st = stages[c.stage]
        st["kernel_s"] += cycles / f_clk
        st["dma_s"] += nbytes / bw
        st["accel_s"] += max(cycles / f_clk, nbytes / bw)
        st["overhead_s"] += hm["call_overhead_s"]
        st["calls"] += 1
        st["cycles"] += cycles
        st["bytes"] += nbytes
    for s in STAGES:
        stages[s]["host_s"] = flops.get(s, 0.0) / hm["effective_flops_per_s"]
        stages[s]["total_s"] = stages[s]["accel_s"] + stages[s]["overhead_s"] + stages[s]["host_s"]
    total = sum(stages[s]["total_s"] for s in STAGES)
    assumptions = [
        f"PL clock {prof['pl_clock_mhz']} MHz, array {array}x{array}, activation chunk {prof['kernel_chunk']} rows",
        f"DMA {bw / 1e6:.0f} MB/s ({prof['stream']['basis']})",
        f"{hm['call_overhead_s'] * 1e6:.0f} us driver overhead per GEMM call, CPU "
        f"{hm['effective_flops_per_s'] / 1e9:.2f} GFLOP/s effective for numpy work ({hm['basis']})",
        "kernel and DMA overlap (streaming): per call max(kernel, DMA)",
    ]
    return {
        "label": "modeled",
        "board": resolve_board(board),
        "stages": stages,
        "total_s": total,
        "assumptions": assumptions,
    }


def model_energy(latency: dict) -> dict:
    """Energy = board power x time: PL-active power while the accelerator runs, idle power otherwise."""
    prof = board_profile(latency["board"])
    pw = prof["power"]
    p_active, p_idle = pw["model_w_active"], pw["model_w_idle"]
    accel = sum(s["accel_s"] for s in latency["stages"].values())
    rest = latency["total_s"] - accel
    cpu_extra = pw["model_w_cpu_busy"] - p_idle
    energy = accel * p_active + rest * (p_idle + cpu_extra)
    return {
        "label": "modeled",
        "joules": energy,
        "avg_w": energy / max(latency["total_s"], 1e-12),
        "assumptions": [
            f"{p_active} W while the accelerator runs, {p_idle + cpu_extra} W while the CPU works ({pw['basis']})"
        ],
    }


def speedup(dense: dict, pruned: dict) -> float:
    return dense["total_s"] / pruned["total_s"]


def summarize(latency: dict) -> List[str]:
    """Readable lines for a latency dict."""
    lines = []
    for s in STAGES:
        st = latency["stages"][s]
        lines.append(
            f"  {s:<9} accel {st['accel_s'] * 1e3:9.1f} ms (kernel {st['kernel_s'] * 1e3:8.1f}, DMA "
            f"{st['dma_s'] * 1e3:8.1f})  overhead {st['overhead_s'] * 1e3:7.1f} ms  host {st['host_s'] * 1e3:8.1f} ms"
        )
    return lines
