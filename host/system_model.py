"""Modeled on-board latency and energy of one utterance (the paper's "system simulation"), per stage and class.

Accelerator: per kernel run ``max(kernel cycles / PL clock, stream bytes / DMA bandwidth)`` (the kernel consumes
and produces its streams while it computes), from ``host.cycle_model.kernel_cycles`` and ``stream_bytes``.
Host: every kernel run also costs the driver's Python, register accesses, two DMA starts and waits, packing the
input stream, unpacking the output and cache maintenance of both buffers; the CPU's remaining work (features,
layer norms, softmax, GELU, int8 quantization of every GEMM operand, dequantization, the attention products
that stay on the CPU, logits) is counted per operation class by ``host_ops`` from the model shape, the encoder
window and the token count, and priced with the per-class costs of ``host/data/boards.json`` (or of a
calibration file written by ``benchmarks/bench_host_ops.py``).

Backend independence: the recorded ``GemmCall`` list depends on how this machine split each GEMM (the
``reference`` backend runs the vocabulary projection as one call, ``emulated`` in column slabs of the kernel's
N_max). The model cuts every recorded call the way the board's kernel must (``board_runs``: slabs of whole column
blocks at ``hls/interface.json``'s N_max, ``host.cycle_model.column_slabs``, the cut ``host.driver`` makes), so
an unsplit call and its slabs cost the same and the figure is the same whichever backend ran; it depends neither
on the order of the calls nor on which utterance they came from (``model.sweep`` sums them). Every result is
labelled ``modeled`` and carries its assumptions.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from host.boards import board_profile, resolve_board
from host.calls import GemmCall
from host.cycle_model import ArrayLike, array_rc, column_slabs, dense_nnz, kernel_cycles, stream_bytes

STAGES = ("features", "encoder", "decoder")
INTERFACE_JSON = Path(__file__).resolve().parents[1] / "hls" / "interface.json"

# Per kernel run, counted in host/pynq_backend.py PynqBackend._run_once: five argument writes (m, k, n, chunk,
# flags) and ap_start, at least one ap_ctrl poll, then status and cycles reads; two DMA transfers (S2MM, MM2S).
MMIO_PER_RUN = 9
DMA_PER_RUN = 2

# Operation classes counted on the CPU (unit in brackets; prices in boards.json host_model.classes):
# gemm [flop], exp [element: exp, log], erf [element: GELU's erf], elementwise [byte read + written by a
# memory-bound numpy pass; a broadcast operand counts as a third float32 stream, as numpy's inner loop then runs
# the strided path like a binary op], reduction [byte read], half [element cast float16 -> float32], page [byte of a new
# array above LARGE_ARRAY_BYTES: the allocator maps fresh pages, the kernel faults and zeroes them],
# fft [point x log2(points)], numpy_call [Python -> numpy call].
CPU_CLASSES = ("gemm", "exp", "erf", "elementwise", "reduction", "half", "page", "fft", "numpy_call")
# glibc malloc serves arrays above its mmap threshold (at most 16 MiB on 32-bit, 32 MiB on 64-bit ARM/x86) from
# freshly mapped pages; of the arrays here only the encoder's stacked attention scores (6 x T x T float32, 54 MB
# at T=1500) exceed it, everything else (at most T x 1536 float32, 9.2 MB) stays below either value.
LARGE_ARRAY_BYTES = 16 * 2**20
# Classes charged per kernel run: driver_call [run], mmio_access [access], dma_transfer [transfer],
# pack [input-stream byte], unpack [output-stream byte], cache [byte flushed or invalidated].
CALL_CLASSES = ("driver_call", "mmio_access", "dma_transfer", "pack", "unpack", "cache")
ACCEL_PARTS = ("kernel", "dma_stall", "pack_unpack", "cache", "mmio_dma", "driver")

Ops = Dict[str, float]  # class -> count
HostOps = Dict[str, Dict[str, Ops]]  # stage -> CPU function -> class -> count
Calibration = Union[str, Path, dict]


def dense_calls(calls: Iterable[GemmCall], array: ArrayLike) -> List[GemmCall]:
    """The same calls with every tile present (the unpruned int8 model on the same array)."""
    return [GemmCall(c.stage, c.layer, c.m, c.k, c.n, tuple(dense_nnz(c.k, c.n, array))) for c in calls]


def retiled_calls(calls: Iterable[GemmCall], tiles: Mapping[str, Sequence[int]]) -> List[GemmCall]:
    """The same calls with each layer's stored tiles per column block taken from ``tiles`` (another package's
    ``nnz_per_colblock`` by layer) where a call spans that layer's column blocks; the others as they are."""
    out = []
    for c in calls:
        t = tiles.get(c.layer)
        out.append(c if t is None or len(t) != len(c.nnz) else GemmCall(c.stage, c.layer, c.m, c.k, c.n, tuple(t)))
    return out


def skipped_calls(calls: List[GemmCall], layers: Iterable[str]) -> List[GemmCall]:
    """The same calls with every tile of ``layers`` pruned: the most that tile pruning of those layers can save
    (activations still stream in and bias-only outputs stream out)."""
    skip = set(layers)
    return [GemmCall(c.stage, c.layer, c.m, c.k, c.n, (0,) * len(c.nnz)) if c.layer in skip else c for c in calls]


@lru_cache(maxsize=4)
def kernel_limits(path: str = str(INTERFACE_JSON)) -> Tuple[int, int]:
    """``(K_max, N_max)`` of the kernel (hls/interface.json, the one source of the register map and limits)."""
    lim = json.loads(Path(path).read_text())["limits"]
    return int(lim["K_max"]), int(lim["N_max"])


def board_runs(call: GemmCall, array: ArrayLike) -> List[Tuple[int, Tuple[int, ...]]]:
    """``[(N, nnz)]`` of the kernel runs that one recorded call takes on the board: slabs of whole column blocks
    of at most N_max columns (``host.cycle_model.column_slabs``, as ``host.driver`` cuts them; a call that a
    backend already cut at N_max stays one run)."""
    k_max, n_max = kernel_limits()
    if call.k > k_max:
        raise ValueError(f"{call.layer}: K={call.k} exceeds the kernel's K_max={k_max} (no Whisper tiny.en GEMM does)")
    c = array_rc(array)[1]
    return [(min(call.n, b1 * c) - b0 * c, call.nnz[b0:b1]) for b0, b1 in column_slabs(call.n, array, n_max)]


@lru_cache(maxsize=65536)
def _gemm_cost(m: int, k: int, n: int, nnz: Tuple[int, ...], array: int, chunk: int) -> Tuple[int, int, int, int]:
    """Kernel cycles, input-stream bytes (packed by the host), output-stream bytes, all bytes the kernel moves."""
    sb = stream_bytes(m, k, n, nnz, array, chunk)
    return kernel_cycles(m, k, n, nnz, array, chunk), sb.input, sb.output, sb.total


# ---- CPU operation counts ---------------------------------------------------------------------------------------


def _add(into: Ops, times: float = 1.0, **counts: float) -> Ops:
    for k, v in counts.items():
        into[k] = into.get(k, 0.0) + times * v
    return into


def _scaled(ops: Ops, times: float) -> Ops:
    return {k: v * times for k, v in ops.items()}


def layer_norm_ops(elems: float) -> Ops:
    """``host.whisper.layer_norm``: two means, six float32 passes (x-mu twice, square, divide, scale, shift), five
    of them against a broadcast operand."""
    return {"reduction": 8 * elems, "elementwise": 68 * elems, "numpy_call": 11}


def gelu_ops(elems: float) -> Ops:
    """``host.whisper.gelu``: erf plus four float32 passes."""
    return {"erf": elems, "elementwise": 36 * elems, "numpy_call": 5}


def softmax_ops(elems: float) -> Ops:
    """``host.whisper.softmax``: max and sum over rows, subtract and divide (broadcast), exp."""
    return {"exp": elems, "reduction": 8 * elems, "elementwise": 24 * elems, "numpy_call": 5}


def quantize_ops(elems: float) -> Ops:
    """``host.quant.quantize_rows`` of float32: abs, row max, divide (broadcast), rint, clip (three operands),
    cast to int8."""
    return {"reduction": 4 * elems, "elementwise": 45 * elems, "numpy_call": 10}


def dequantize_ops(elems: float, epilogue: bool) -> Ops:
    """``host.quant.dequantize`` of int32 (cast, two scales, bias); with the kernel's on-chip epilogue the
    output arrives as float16 and only the cast to float32 is left."""
    if epilogue:
        return {"half": elems, "numpy_call": 1}
    return {"elementwise": 44 * elems, "numpy_call": 5}


def _fresh(nbytes: float) -> float:
    """Bytes of a new array that come from freshly mapped pages (``LARGE_ARRAY_BYTES``)."""
    return nbytes if nbytes > LARGE_ARRAY_BYTES else 0.0


def dynamic_operand_ops(elems: float) -> Ops:
    """``Accelerator.matmul_dynamic``'s B operand: ``quantize_columns`` (quantize + int8 transpose copy) and
    ``BlockSparseWeights.from_dense`` (pad copy, tile test, tile gather)."""
    return _add(quantize_ops(elems), elementwise=7 * elems, reduction=elems, numpy_call=14)


def _gemm_host(cpu: Dict[str, Ops], m: int, k: int, n: int, epilogue: bool, times: float = 1.0) -> None:
    """Host side of one accelerator GEMM ``[m, k] @ [k, n]``: quantize the activations, then dequantize the int32
    result (kernel v1) or cast the kernel's fp16 result (``fp16_cast``, kernel v2's epilogue)."""
    _add(cpu.setdefault("quantize", {}), times, **quantize_ops(m * k))
    _add(cpu.setdefault("fp16_cast" if epilogue else "dequantize", {}), times, **dequantize_ops(m * n, epilogue))


def _attention_host(cpu: Dict[str, Ops], m: int, ctx: int, d: int, heads: int, on_accel: bool, epilogue: bool) -> None:
    """``host.whisper.attention`` for ``m`` queries over ``ctx`` keys, excluding the projections."""
    dh = d // heads
    att = cpu.setdefault("attention", {})
    s = heads * m * ctx  # score elements
    # reshape/transpose views, scale, stack/transpose copies of the scores and of the output
    _add(att, elementwise=8 * s + 8 * m * d, page=_fresh(4 * s), numpy_call=12)
    if on_accel:  # np.stack of scores and outputs
        _add(att, elementwise=8 * s + 8 * m * d, page=_fresh(4 * s), numpy_call=2 * heads)
        for _ in range(heads):
            _gemm_host(cpu, m, dh, ctx, epilogue)  # Q K^T: Q rows quantized, scores dequantized
            _add(cpu["attention"], **dynamic_operand_ops(dh * ctx))
            _gemm_host(cpu, m, ctx, dh, epilogue)  # P V: probabilities quantized
            _add(cpu["attention"], **dynamic_operand_ops(ctx * dh))
    else:
        _add(att, gemm=2 * 2 * s * dh)
    _add(cpu.setdefault("softmax", {}), page=3 * _fresh(4 * s), **softmax_ops(s))


def _gelu(cpu: Dict[str, Ops], elems: float) -> None:
    _add(cpu.setdefault("gelu", {}), **gelu_ops(elems))


def _ln(cpu: Dict[str, Ops], elems: float) -> None:
    _add(cpu.setdefault("layer_norm", {}), **layer_norm_ops(elems))


def _other(cpu: Dict[str, Ops], **counts: float) -> None:
    _add(cpu.setdefault("other", {}), **counts)


def host_ops(
    cfg: Dict[str, int],
    audio_ctx: int,
    n_tokens: int,
    attention_on_accel: bool = True,
    epilogue: bool = True,
    prompt_tokens: int = 2,
) -> HostOps:
    """CPU work per stage and function (``features``, ``layer_norm``, ``softmax``, ``gelu``, ``quantize``,
    ``dequantize`` or ``fp16_cast``, ``attention``, ``other``), as counts per operation class, of one utterance:
    ``audio_ctx`` encoder positions (1500 = the whole 30-s window), ``n_tokens`` decoded tokens (plus the
    end-of-text step),
    the encoder's attention products on the accelerator or not, and ``epilogue``: the kernel dequantizes on chip
    (float16 out, kernel v2), which removes the dequantize passes but for a cast; False models the int32-output
    kernel v1 for comparison."""
    d, heads, ff = cfg["n_audio_state"], cfg["n_audio_head"], 4 * cfg["n_audio_state"]
    dt, heads_t, fft_t = cfg["n_text_state"], cfg["n_text_head"], 4 * cfg["n_text_state"]
    n_mels, vocab, t = cfg["n_mels"], cfg["n_vocab"], audio_ctx
    frames, n_fft, samples = 3000, 400, 480000  # host.features: 30-s window, 400-point frames, hop 160
    bins = n_fft // 2 + 1
    feats: Ops = {
        # pad/trim, cast to float64, reflect pad, window product, |X|^2, cast, log10 floor, scale (host.features)
        "elementwise": 36 * samples + 16 * (frames + 1) * n_fft + 52 * (frames + 1) * bins + 40 * n_mels * frames,
        "fft": (frames + 1) * n_fft * math.log2(n_fft),
        "gemm": 2 * n_mels * bins * frames,
        "exp": n_mels * frames,
        "reduction": 4 * n_mels * frames,
        "numpy_call": 25,
    }
    enc: Dict[str, Ops] = {}
    # conv frontend: im2col copies (host.whisper.im2col_1d), two GEMMs, two GELUs, positional embedding
    _other(enc, elementwise=8 * 2 * t * n_mels * 4 + 8 * t * 3 * d + 8 * 2 * t * d + 12 * t * d, numpy_call=20)
    _gemm_host(enc, 2 * t, 3 * n_mels, d, epilogue)
    _gelu(enc, 2 * t * d)
    _gemm_host(enc, t, 3 * d, d, epilogue)
    _gelu(enc, t * d)
    for _ in range(cfg["n_audio_layer"]):
        _ln(enc, t * d)
        _gemm_host(enc, t, d, d, epilogue, times=3)  # query, key, value
        _attention_host(enc, t, t, d, heads, attention_on_accel, epilogue)
        _gemm_host(enc, t, d, d, epilogue)  # attn.out
        _ln(enc, t * d)
        _gemm_host(enc, t, d, ff, epilogue)
        _gelu(enc, t * ff)
        _gemm_host(enc, t, ff, d, epilogue)
        _other(enc, elementwise=2 * 12 * t * d, numpy_call=2)  # residual adds
    _ln(enc, t * d)
    _other(enc, elementwise=8 * t * d, numpy_call=1)  # cast of the encoder output
    dec: Dict[str, Ops] = {}
    _gemm_host(dec, t, d, dt, epilogue, times=2 * cfg["n_text_layer"])  # cross-attention K and V, once
    steps = [prompt_tokens] + [1] * n_tokens  # the prompt, then one step per token (the last one yields EOT)
    ctx = 0
    for m in steps:
        ctx += m
        _other(dec, elementwise=20 * m * dt, numpy_call=4)  # token + positional embedding
        for _ in range(cfg["n_text_layer"]):
            _ln(dec, m * dt)
            _gemm_host(dec, m, dt, dt, epilogue, times=3)
            if ctx > m:
                _other(dec, elementwise=2 * 8 * ctx * dt, numpy_call=2)  # KV cache concatenation
            _attention_host(dec, m, ctx, dt, heads_t, False, epilogue)
            _gemm_host(dec, m, dt, dt, epilogue)
            _ln(dec, m * dt)
            _gemm_host(dec, m, dt, dt, epilogue)  # cross_attn.query
            _attention_host(dec, m, t, dt, heads_t, False, epilogue)
            _gemm_host(dec, m, dt, dt, epilogue)
            _ln(dec, m * dt)
            _gemm_host(dec, m, dt, fft_t, epilogue)
            _gelu(dec, m * fft_t)
            _gemm_host(dec, m, fft_t, dt, epilogue)
            _other(dec, elementwise=3 * 12 * m * dt, numpy_call=3)
        _ln(dec, dt)
        _gemm_host(dec, 1, dt, vocab, epilogue)  # logits
        _other(dec, elementwise=12 * vocab + 9 * vocab, reduction=8 * vocab, numpy_call=8)  # float64, mask, argmax
    return {"features": {"features": feats}, "encoder": enc, "decoder": dec}


def add_ops(total: HostOps, ops: HostOps) -> HostOps:
    """``total += ops`` (sums utterances' counts in place); returns ``total``."""
    for stage, funcs in ops.items():
        dst = total.setdefault(stage, {})
        for fn, counts in funcs.items():
            _add(dst.setdefault(fn, {}), **counts)
    return total


# ---- costs ------------------------------------------------------------------------------------------------------


def load_calibration(calibration: Calibration) -> dict:
    """A calibration written by ``benchmarks/bench_host_ops.py`` (path or dict), checked for its classes."""
    data = json.loads(Path(calibration).read_text()) if isinstance(calibration, (str, Path)) else calibration
    unknown = set(data.get("classes", {})) - set(CPU_CLASSES) - set(CALL_CLASSES)
    if unknown:
        raise ValueError(f"calibration has unknown host classes {sorted(unknown)}; known: {CPU_CLASSES + CALL_CLASSES}")
    return data


def host_costs(board: str, calibration: Optional[Calibration] = None) -> Dict[str, dict]:
    """Seconds per unit of every host class for ``board``, calibration entries replacing the planning values."""
    classes = {k: dict(v) for k, v in board_profile(board)["host_model"]["classes"].items()}
    if calibration is not None:
        cal = load_calibration(calibration)
        for k, v in cal.get("classes", {}).items():
            classes[k] = {**v, "source": cal.get("source", "calibration")}
    return classes


def ops_seconds(ops: Ops, costs: Dict[str, dict]) -> float:
    return sum(n * costs[k]["s_per_unit"] for k, n in ops.items())


def model_latency(
    calls: Iterable[GemmCall],
    ops: HostOps,
    board: str,
    array: ArrayLike,
    calibration: Optional[Calibration] = None,
) -> dict:
    """Per-stage modeled seconds on ``board``: kernel, DMA, driver overhead, host CPU, total, and ``classes``
    (kernel, dma_stall, pack_unpack, cache, mmio_dma, driver, then one entry per CPU function) that add up to
    the stage total. ``ops`` comes from ``host_ops``; ``calibration`` (a ``bench_host_ops.py`` file or dict)
    replaces the board's planning costs."""
    board = resolve_board(board)
    prof = board_profile(board)
    cal = load_calibration(calibration) if calibration is not None else None
    costs = host_costs(board, cal)
    f_clk = prof["pl_clock_mhz"] * 1e6
    bw = (cal or {}).get("stream", {}).get("bytes_per_s") or prof["stream"]["bytes_per_s"]
    sec = {k: v["s_per_unit"] for k, v in costs.items()}
    run_fixed = sec["driver_call"] + MMIO_PER_RUN * sec["mmio_access"] + DMA_PER_RUN * sec["dma_transfer"]
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
            "classes": dict.fromkeys(ACCEL_PARTS, 0.0),
        }
        for s in STAGES
    }
    for c in calls:
        st = stages[c.stage]
        cl = st["classes"]
        for n, nnz in board_runs(c, array):
            cycles, b_in, b_out, b_all = _gemm_cost(c.m, c.k, n, nnz, array, prof["kernel_chunk"])
            t_k, t_d = cycles / f_clk, b_all / bw
            st["kernel_s"] += t_k
            st["dma_s"] += t_d
            st["accel_s"] += max(t_k, t_d)
            cl["kernel"] += t_k
            cl["dma_stall"] += max(0.0, t_d - t_k)
            cl["pack_unpack"] += b_in * sec["pack"] + b_out * sec["unpack"]
            cl["cache"] += (b_in + b_out) * sec["cache"]
            cl["mmio_dma"] += MMIO_PER_RUN * sec["mmio_access"] + DMA_PER_RUN * sec["dma_transfer"]
            cl["driver"] += sec["driver_call"]
            st["overhead_s"] += run_fixed + b_in * sec["pack"] + b_out * sec["unpack"] + (b_in + b_out) * sec["cache"]
            st["calls"] += 1
            st["cycles"] += cycles
            st["bytes"] += b_all
    for s in STAGES:
        st = stages[s]
        for fn, counts in ops.get(s, {}).items():
            st["classes"][fn] = st["classes"].get(fn, 0.0) + ops_seconds(counts, costs)
            st["host_s"] += ops_seconds(counts, costs)
        st["total_s"] = st["accel_s"] + st["overhead_s"] + st["host_s"]
    total = sum(stages[s]["total_s"] for s in STAGES)
    src = f"calibration {cal.get('source', '(dict)')}" if cal else "boards.json planning values"
    assumptions = [
        f"PL clock {prof['pl_clock_mhz']} MHz, array {'x'.join(map(str, array_rc(array)))}, activation chunk "
        f"{prof['kernel_chunk']} rows",
        f"DMA {bw / 1e6:.0f} MB/s ({(cal or {}).get('stream', {}).get('basis') or prof['stream']['basis']})",
        "kernel and DMA overlap (streaming): per kernel run max(kernel, DMA); GEMMs split at the kernel's N_max",
        f"per kernel run {MMIO_PER_RUN} register accesses and {DMA_PER_RUN} DMA starts/waits "
        "(host/pynq_backend.py), stream pack/unpack and cache maintenance per byte",
        f"host costs per operation class from {src}:",
    ]
    assumptions += [f"  {k}: {v['s_per_unit']:.3g} s/{v['unit']} ({v['basis']})" for k, v in costs.items()]
    return {"label": "modeled", "board": board, "stages": stages, "total_s": total, "assumptions": assumptions}


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
    """Readable lines for a latency dict: per stage the accelerator/overhead/host split, then every class."""
    lines = []
    for s in STAGES:
        st = latency["stages"][s]
        lines.append(
            f"  {s:<9} {st['total_s'] * 1e3:9.1f} ms: accel {st['accel_s'] * 1e3:8.1f} (kernel "
            f"{st['kernel_s'] * 1e3:7.1f}, DMA {st['dma_s'] * 1e3:7.1f}), per-call host {st['overhead_s'] * 1e3:7.1f},"
            f" CPU {st['host_s'] * 1e3:8.1f}"
        )
        parts = sorted(((v, k) for k, v in st["classes"].items() if v > 0), reverse=True)
        if parts:  # a stage with no work (every window skipped) gets no class line
            lines.append("            " + ", ".join(f"{k} {v * 1e3:.1f}" for v, k in parts))
    return lines
