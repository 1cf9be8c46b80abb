"""Where the emulated demo's time goes: the C simulation, the host runtime, and the model's own bookkeeping.

    python benchmarks/bench_emulator.py [--array 8] [--workers 1 2]

Runs the bundled demo clip (full 30-s encoder window, dense int8 package) with the ``emulated`` backend once per
``--workers`` value (the number of independent kernel calls, column slabs and attention heads, that the
Accelerator lets run at once), in this one run so the figures compare on a shared machine. Prints, per run, the
wall time, the share spent inside the C simulation (the accelerator backend), the simulated cycles and the C
simulation's speed in simulated cycles per second; then the model's own cost for the utterance
(``host.system_model.model_latency`` of the recorded calls, pruned and dense), as a fraction of the run. Every
figure is ``emulated``: wall time of this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.asr_demo import default_package  # noqa: E402
from host.audio import DEMO_CLIP  # noqa: E402
from host.driver import Accelerator, EmulatedBackend  # noqa: E402
from host.package import load_package  # noqa: E402
from host.session import Session  # noqa: E402
from host.whisper import WhisperRuntime  # noqa: E402


def run_once(pkg, array: int, workers: int) -> dict:
    """Transcribe the demo clip; wall time, C-simulation time, cycles and the session's record."""
    backend = EmulatedBackend((array, array))
    backend.max_concurrent = workers
    acc = Accelerator(pkg, backend)
    t0 = time.perf_counter()
    try:
        rec = Session(WhisperRuntime(pkg.weights, acc), acc).transcribe(DEMO_CLIP)
    finally:
        acc.close()
    total = rec.stats.total()
    wall_s = time.perf_counter() - t0
    return {"wall_s": wall_s, "backend_s": total.backend_s, "cycles": total.measured_cycles, "rec": rec}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--array", type=int, default=8, choices=(8, 16), help="array (dense package of that tile)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1], help="concurrent calls")
    args = ap.parse_args()
    if any(w < 1 for w in args.workers):
        ap.error("--workers must be >= 1")
    pkg = load_package(default_package(args.array, 0.0, "act-ls", []), expect_tile=(args.array, args.array))
    runs = {}
    for w in args.workers:
        r = runs[w] = run_once(pkg, args.array, w)
        print(
            f"workers {w}: {r['wall_s']:.1f} s wall, C simulation {r['backend_s']:.1f} s "
            f"({r['cycles'] / 1e6:.0f} M simulated cycles), transcript {r['rec'].text!r}  [emulated]"
        )
    base = runs[args.workers[0]]
    rec = base["rec"]
    for w in args.workers[1:]:
        print(f"workers {w} vs {args.workers[0]}: {base['wall_s'] / runs[w]['wall_s']:.2f}x faster wall  [emulated]")
    t0 = time.perf_counter()
    modeled = [(f.pruned, f.dense) for f in (rec.on_board(b, args.array) for b in ("pynq-z2", "ultra96-v2"))]
    model_s = time.perf_counter() - t0
    print(
        f"model's own cost: {1e3 * model_s:.0f} ms for {len(rec.calls)} calls on {len(modeled)} boards, pruned and "
        "dense "
        f"({100 * model_s / base['wall_s']:.2f} % of the run)  [emulated]"
    )


if __name__ == "__main__":
    main()
