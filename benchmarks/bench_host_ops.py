"""Host operation classes of the system model, measured on this machine, and a check of the model against a run.

    python benchmarks/bench_host_ops.py [--out FILE]            # measure; write a calibration file
    python benchmarks/bench_host_ops.py --validate [--out FILE]  # ... then check it on the demo clip
    python benchmarks/bench_host_ops.py --pack                   # per-call stream packing vs a plain copy

Measures the CPU classes of ``host.system_model`` (``gemm``, ``exp``, ``erf``, ``elementwise``, ``reduction``,
``half``, ``page``, ``fft``, ``numpy_call``) and ``driver_call`` (the ``host.driver.Accelerator``'s Python per
call; its backend's GEMM, its quantize and cast and the cycle model excluded) as seconds per unit, each the median
CPU time of several repeats, and writes them in the schema of ``host/data/boards.json`` ``host_model.classes``;
``model_latency(..., calibration=FILE)`` uses them in place of the planning values. Classes this script does not
measure (register accesses, DMA starts, stream pack/unpack, cache maintenance) keep the board's planning values;
``board_tests/test_host_calibration.py`` runs this measurement on a board and adds the register and DMA costs.

``--validate``: predicts the host (non-accelerator) time of the bundled demo clip from the operation counts
(``host.system_model.host_ops``) and this calibration, runs the clip with the ``reference`` backend, measures the
same share (CPU time of the runtime's thread: the backend's GEMMs run in the Accelerator's worker thread; the
Accelerator's cycle-model bookkeeping is switched off) and prints as its last line ``host model validation:
modeled X ms, measured Y ms, ratio Z`` (Z = modeled / measured; target 0.75-1.33).

``--pack``: for every Whisper tiny.en GEMM shape (encoder M = 1500, decoder M = 1) on arrays 8x8 and 16x16, the
host work of one kernel call (``host.stream.pack_input_into`` into the DMA buffer, ``unpack_output`` of the fp16
result into a reused array (first touches of new memory are the model's ``page`` class), and for the attention's
per-call operands the weight segment built and copied) against one numpy copy of
the same bytes, each the median wall time of repeats in this run; last line ``pack vs copy: worst ratio R`` over
the calls that move at least 64 KiB (the decoder's M = 1 calls are reported as a fixed cost per call instead).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, Optional, Tuple

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads its BLAS
    os.environ.setdefault(_var, "1")  # one BLAS thread, like the boards' serial ATLAS; steadier on a shared machine

import numpy as np  # noqa: E402

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.driver import Accelerator  # noqa: E402
from host.system_model import (  # noqa: E402
    STAGES,
    dequantize_ops,
    host_ops,
    model_latency,
    ops_seconds,
    quantize_ops,
)

SCHEMA = "sasp-host-calibration/1"


def _cpu_time(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU time of this thread over ``repeats`` runs after a warm-up. CPU time, not wall time, so that
    other processes on a shared machine count only through the caches and memory bandwidth they share; the
    median, like ``validate``'s, sees them as a run of the model does."""
    fn()  # warm-up (page faults of first use, lazy imports)
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return statistics.median(times)


def _entry(unit: str, seconds: float, what: str) -> dict:
    return {"unit": unit, "s_per_unit": seconds, "basis": f"measured: {what} (median CPU time of several runs)"}


def probe_accelerator(backend) -> Accelerator:
    """An ``Accelerator`` on ``backend`` with one random 8 x 8 weight layer named ``probe`` (no weight package
    needed) and the cycle model switched off (it is the model's bookkeeping, not host work)."""
    from host.blocksparse import BlockSparseWeights
    from host.quant import quantize_columns

    tile = tuple(backend.array)
    w_q, scale = quantize_columns(np.random.default_rng(0).standard_normal(tile).astype(np.float32))
    weights = BlockSparseWeights.from_dense(w_q, tile)
    layer = SimpleNamespace(weights=weights, scale=scale, bias=np.zeros(tile[1], np.float32))
    acc = Accelerator(SimpleNamespace(tile=tile, layers={"probe": layer}, path="bench_host_ops probe"), backend)
    acc._cycles = lambda *a: 0
    return acc


def measure_driver_call(repeats: int, costs: Dict[str, dict]) -> float:
    """Python of one ``Accelerator`` call: median CPU time of the calling thread (the backend's GEMM runs in the
    Accelerator's worker thread) on a 1 x 8 x 8 GEMM, minus its quantize and float16 cast as the model prices them
    with ``costs`` (the classes measured just before)."""
    from host.driver import ReferenceBackend

    acc = probe_accelerator(ReferenceBackend((8, 8)))
    x = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
    try:
        per_call = _cpu_time(lambda: acc.matmul(x, "probe"), repeats * 50)
    finally:
        acc.close()
    modeled = ops_seconds(quantize_ops(8), costs) + ops_seconds(dequantize_ops(8, epilogue=True), costs)
    return max(0.0, per_call - modeled)


def measure_host_classes(repeats: int = 7, progress: bool = True) -> dict:
    """Seconds per unit of every CPU class and of ``driver_call`` on this machine, as a calibration dict."""
    from scipy.special import erf
    from tqdm import tqdm

    rng = np.random.default_rng(0)
    big = rng.standard_normal((1500, 1500)).astype(np.float32)  # an encoder score matrix per head (9 MB)
    other = rng.standard_normal((1500, 1500)).astype(np.float32)
    a128, b128 = (rng.standard_normal((128, 128)).astype(np.float32) for _ in range(2))
    half = big.astype(np.float16)
    stacked = [rng.standard_normal((6, 1500, 1500)).astype(np.float32) for _ in range(2)]  # 54 MB each
    into = np.empty_like(stacked[0])
    frames = rng.standard_normal((3001, 400))
    tiny = np.ones(4, np.float32)
    n = big.size
    steps: Dict[str, Tuple[str, Callable[[], float]]] = {
        "gemm": ("128x128 float32 A @ B, 2*128^3 flop", lambda: _cpu_time(lambda: a128 @ b128, 50) / (2 * 128**3)),
        "exp": ("np.exp of 1500x1500 float32", lambda: _cpu_time(lambda: np.exp(big), repeats) / n),
        "erf": ("scipy.special.erf of 1500x1500 float32", lambda: _cpu_time(lambda: erf(big), repeats) / n),
        "elementwise": (
            "a + b of two 1500x1500 float32 into a new array, 12 bytes per element",
            lambda: _cpu_time(lambda: big + other, repeats) / (12 * n),
        ),
        "reduction": (
            "row max of 1500x1500 float32, 4 bytes per element",
            lambda: _cpu_time(lambda: big.max(-1, keepdims=True), repeats) / (4 * n),
        ),
        "fft": (
            "np.fft.rfft of 3001 frames of 400 float64 samples, per point x log2(400)",
            lambda: _cpu_time(lambda: np.fft.rfft(frames, axis=1), repeats) / (frames.size * np.log2(400)),
        ),
        "half": (
            "cast of 1500x1500 float16 to float32",
            lambda: _cpu_time(lambda: half.astype(np.float32), repeats) / n,
        ),
        "page": (
            "a + b of two 6x1500x1500 float32 into a new array minus the same into an existing one, per new byte",
            lambda: (
                max(
                    0.0,
                    _cpu_time(lambda: stacked[0] + stacked[1], repeats)
                    - _cpu_time(lambda: np.add(*stacked, out=into), repeats),
                )
                / into.nbytes
            ),
        ),
        "numpy_call": ("np.add on 4-element float32 arrays", lambda: _cpu_time(lambda: np.add(tiny, tiny), 2000)),
    }
    units = {
        "gemm": "flop",
        "exp": "element",
        "erf": "element",
        "elementwise": "byte",
        "reduction": "byte",
        "half": "element",
        "page": "byte",
        "fft": "point*log2",
        "numpy_call": "call",
        "driver_call": "run",
    }
    classes = {}
    for name, (what, fn) in tqdm(steps.items(), desc="host classes", disable=not progress):
        classes[name] = _entry(units[name], fn(), what)
    what = "host.driver.Accelerator.matmul 1x8x8 (reference backend in its worker thread) less its quantize and cast"
    classes["driver_call"] = _entry(units["driver_call"], measure_driver_call(repeats, classes), what)
    return {
        "schema": SCHEMA,
        "label": "measured",
        "source": f"benchmarks/bench_host_ops.py on {platform.node()} ({platform.machine()})",
        "machine": {
            "node": platform.node(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "classes": classes,
        "not_measured": "mmio_access, dma_transfer, pack, unpack, cache: the board's planning values apply",
    }


def host_share(latency: dict) -> float:
    """Modeled seconds of host work that a run on the ``reference`` backend also does: every CPU function and the
    driver's Python per call (no registers, DMA, stream packing or cache maintenance on that backend)."""
    skip = {"kernel", "dma_stall", "pack_unpack", "cache", "mmio_dma"}
    return sum(v for s in STAGES for k, v in latency["stages"][s]["classes"].items() if k not in skip)


def validate(package, audio: np.ndarray, calibration: dict, runs: int = 4) -> Tuple[float, float, dict]:
    """``(modeled_s, measured_s, latency)`` of the host share of one transcription of ``audio`` (full encoder
    window) on the ``reference`` backend; measured = CPU time of the runtime's thread (the backend's GEMMs run in
    the Accelerator's worker thread), the median of ``runs`` after the first (which warms caches). The modeled figure
    uses ``calibration`` and the board-independent classes; the dequantize passes are counted on the CPU unless
    the backend returns float16 (the kernel's epilogue)."""
    from host.whisper import WhisperRuntime

    acc = Accelerator(package, "reference")
    acc._cycles = lambda *a: 0  # cycle-model walks are the model's bookkeeping, not host work
    out_types = set()
    gemm = acc.backend.gemm

    def recording_gemm(*args):
        y, cycles = gemm(*args)
        out_types.add(y.dtype)
        return y, cycles

    acc.backend.gemm = recording_gemm
    try:
        rt = WhisperRuntime(package.weights, acc)
        ctx = rt.cfg["n_audio_ctx"]
        times, tokens = [], 0
        for _ in range(runs):
            acc.take_calls()
            acc.take_stats()
            t0 = time.thread_time()
            tr = rt.decode(rt.encode(rt.features(audio), ctx))
            times.append(time.thread_time() - t0)
            tokens = len(tr.tokens)
        measured = statistics.median(times[1:] or times)
        calls = acc.take_calls()
    finally:
        acc.close()
    ops = host_ops(rt.cfg, ctx, tokens, rt.amm is not None, epilogue=out_types == {np.dtype(np.float16)})
    lat = model_latency(calls, ops, "pynq-z2", package.tile[0], calibration=calibration)
    return host_share(lat), measured, lat


def demo_package() -> Path:
    """The demo's dense int8 8x8 package of Whisper tiny.en (built once from the pip-installed weights; cached)."""
    from host.asr_demo import default_package

    return default_package(8, 0.0, "act-ls", [])


PACK_SHAPES = [  # name, M, K, N, operand built per call (attention) or resident (a layer's weights)
    ("enc conv1 (im2col)", 3000, 240, 384, False),
    ("enc conv2 (im2col)", 1500, 1152, 384, False),
    ("enc q/k/v/out", 1500, 384, 384, False),
    ("enc fc1", 1500, 384, 1536, False),
    ("enc fc2", 1500, 1536, 384, False),
    ("enc q.k^T (head)", 1500, 64, 1500, True),
    ("enc p.v (head)", 1500, 1500, 64, True),
    ("dec cross k/v", 1500, 384, 384, False),
    ("dec q/k/v/out", 1, 384, 384, False),
    ("dec fc1", 1, 384, 1536, False),
    ("dec fc2", 1, 1536, 384, False),
    ("dec logits slab", 1, 384, 4096, False),
    ("dec self-attn q.k^T", 1, 64, 16, True),
]


def wall_median(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after a warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


BIG_CALL = 64 * 1024  # bytes: calls below this are dominated by the fixed per-call work, reported apart


def pack_vs_copy(repeats: int = 15, arrays=((8, 8), (16, 16)), chunk: int = 96) -> Tuple[float, float]:
    """Print the per-call host work of every shape against a numpy copy of its bytes; returns the worst ratio over
    calls of at least BIG_CALL bytes and the largest host work (s) of the smaller calls."""
    from host.blocksparse import BlockSparseWeights
    from host.cycle_model import input_words, output_words
    from host.stream import GemmOperand, pack_input_into, unpack_output

    rng = np.random.default_rng(0)
    worst = small = 0.0
    print(f"{'shape':<22}{'array':>7}{'bytes':>12}{'host work':>12}{'copy':>10}{'ratio':>7}  [emulated: wall time]")
    for a in arrays:
        for name, m, k, n, per_call in PACK_SHAPES:
            w = BlockSparseWeights.from_dense(rng.integers(-128, 128, (k, n), dtype=np.int8), a)
            op = GemmOperand(w, np.ones(n, np.float32), np.zeros(n, np.float32), resident=not per_call)
            x = rng.integers(-128, 128, (m, k), dtype=np.int8)
            sx = np.ones(m, np.float32)
            inbuf = np.empty(input_words(m, k, a), np.uint64)
            out = rng.integers(0, 2**63, output_words(m, n, a), dtype=np.uint64)
            y16 = np.empty((m, -(-n // a[1]) * a[1]), np.float16)  # reused: first-touch pages are the 'page' class
            seg_words = op.segment.size
            scratch = np.empty(seg_words, np.uint64)

            def work(w=w, op=op, x=x, sx=sx, a=a, m=m, n=n, inbuf=inbuf, out=out, y16=y16, scratch=scratch,
                     per_call=per_call):  # fmt: skip
                if per_call:  # the attention's right-hand side: its segment built and copied every call
                    scratch[:] = GemmOperand(w, op.scale, op.bias, resident=False).segment
                pack_input_into(inbuf, x, sx, a)
                return unpack_output(out, m, n, a, chunk, out=y16)

            nbytes = 8 * (inbuf.size + out.size + (seg_words if per_call else 0))
            src, dst = np.ones(nbytes, np.uint8), np.empty(nbytes, np.uint8)
            t_work = wall_median(work, repeats)
            t_copy = wall_median(lambda dst=dst, src=src: np.copyto(dst, src), repeats)
            ratio = t_work / t_copy
            if nbytes >= BIG_CALL:
                worst = max(worst, ratio)
            else:
                small = max(small, t_work)
            shape = f"{a[0]:>4}x{a[1]:<2}"
            print(f"{name:<22}{shape}{nbytes:>12,}{t_work * 1e3:>10.3f}ms{t_copy * 1e3:>8.3f}ms{ratio:>7.2f}")
    return worst, small


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path("results") / f"host_calibration_{platform.node()}.json",
        help="calibration file to write (default results/host_calibration_<host>.json)",
    )
    ap.add_argument("--repeats", type=int, default=7, help="repeats per measurement (the median counts)")
    ap.add_argument("--validate", action="store_true", help="then model and measure the demo clip's host share")
    ap.add_argument("--pack", action="store_true", help="only: time per-call stream packing against a plain copy")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.pack:
        worst, small = pack_vs_copy(max(args.repeats, 5))
        print(f"fixed host work of the calls under {BIG_CALL // 1024} KiB: at most {small * 1e6:.0f} us per call")
        print(f"pack vs copy: worst ratio {worst:.2f}")
        return 0
    cal = measure_host_classes(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(cal, indent=2) + "\n")
    for k, v in cal["classes"].items():
        print(f"{k:<12} {v['s_per_unit']:.3e} s/{v['unit']:<10} {v['basis']}")
    print(f"calibration written to {args.out}")
    if not args.validate:
        return 0
    from host.audio import DEMO_CLIP, load_audio
    from host.package import load_package

    modeled, measured, lat = validate(load_package(demo_package()), load_audio(DEMO_CLIP), cal)
    print("demo clip, host share per stage and class (modeled with this calibration, ms):")
    for s in STAGES:
        cl = {k: v for k, v in lat["stages"][s]["classes"].items() if v > 0 and k not in ("kernel", "dma_stall")}
        print(f"  {s:<9} " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in sorted(cl.items(), key=lambda kv: -kv[1])))
    print(
        f"host model validation: modeled {modeled * 1e3:.0f} ms, measured {measured * 1e3:.0f} ms, "
        f"ratio {modeled / measured:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
