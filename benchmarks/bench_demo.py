"""Emulated vs modeled on-board latency of one 5-s clip, dense vs pruned, on PYNQ-Z2 (8x8) and Ultra96-V2 (16x16).

    python benchmarks/bench_demo.py --sparsity 0.3 --calib /path/to/unlabelled/speech [--backend emulated]

Packages are built once and cached (``packages`` under ``host.cache.cache_root()``). Figures: ``emulated`` = wall
time of this machine running the chosen backend; ``modeled`` = cycle model + DMA bandwidth + CPU work on the board
(assumptions printed by ``host/asr_demo.py``); the speedup from pruning compares the pruned and the dense int8
package on the same array and board, both modeled.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from host.asr_demo import default_package, transcribe_one
from host.boards import all_boards
from host.driver import Accelerator
from host.package import load_package
from host.whisper import WhisperRuntime
from model.synth_speech import synthesize_long

TARGETS = tuple((b.key, b.default_array) for b in all_boards())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparsity", type=float, default=0.3, help="target fraction of prunable MACs pruned")
    ap.add_argument("--method", default="act-ls")
    ap.add_argument("--calib", type=Path, nargs="*", default=[], help="calibration audio (default: synthesized)")
    ap.add_argument("--backend", default="emulated", choices=("emulated", "reference"))
    ap.add_argument("--clip", type=Path, default=None, help="audio file (default: a synthesized 5-s clip)")
    ap.add_argument(
        "--boards", nargs="+", default=[b for b, _ in TARGETS], help="pynq-z2 (8x8) and/or ultra96-v2 (16x16)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip or synthesize_long(Path(tmp) / "clip5.flac", 5)
        rows = []
        for board, array in [t for t in TARGETS if t[0] in args.boards]:
            modeled = {}
            for sparsity in (0.0, args.sparsity):
                pkg = load_package(default_package(array, sparsity, args.method, args.calib))
                acc = Accelerator(pkg, args.backend)
                rt = WhisperRuntime(pkg.weights, acc)
                t0 = time.perf_counter()
                res = transcribe_one(rt, acc, clip.name, clip, None, board, array, False, None)
                wall = time.perf_counter() - t0
                acc.close()
                mb = res["modeled_board"]
                modeled[sparsity] = mb["total_s"]
                rows.append(
                    (
                        board,
                        array,
                        sparsity,
                        float(pkg.metadata.get("mac_sparsity", 0.0)),
                        wall,
                        mb["total_s"],
                        res["energy"]["joules"],
                        res["transcript"],
                    )
                )
            rows.append((board, array, "speedup", None, None, modeled[0.0] / modeled[args.sparsity], None, ""))
    print(f"5-s clip, backend {args.backend}; wall = emulated (this machine), on-board = modeled")
    print(f"{'board':<11} {'array':>5} {'target':>7} {'MAC sp.':>7} {'wall s':>7} {'board ms':>9} {'J':>6}  transcript")
    for board, array, sp, mac, wall, lat, joules, text in rows:
        if sp == "speedup":
            print(f"{board:<11} {array:>5}  modeled system-wide speedup from pruning: {lat:.2f}x")
            continue
        print(f"{board:<11} {array:>5} {sp:>7.2f} {mac:>7.3f} {wall:>7.1f} {lat * 1e3:>9.1f} {joules:>6.2f}  {text}")


if __name__ == "__main__":
    main()
