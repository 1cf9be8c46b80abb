"""A distillation step with the teacher's targets kept per clip against one that recomputes them, in one run.

    python benchmarks/bench_distill_step.py --package START.sasp --audio DIR [DIR ...] [--model W.pt]
        [--batch 16] [--steps 3] [--loss enc kv logits] [--no-trim]

``model.distill`` keeps each clip's teacher targets (encoder outputs, next-token log-probabilities) after the
first time the clip is in a batch, unless the clips are augmented. Two students start from the same package; the
kept one first sees every clip once (one epoch, losses only, untimed), then both train ``--steps`` steps on the
same batches, alternately, and the script prints each one's median wall time per step and their ratio (this
machine is shared, so only the ratio of one run means anything) and the largest difference of their losses.
Defaults are the CPU recipe's (docs/pruning.md: batch 16, trimmed windows, ``enc kv logits``).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host import cli  # noqa: E402


@cli.entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = cli.Parser(description=__doc__)
    ap.add_argument("--package", type=Path, required=True, help="start package (pruned)")
    ap.add_argument("--audio", type=Path, nargs="+", required=True, help="unlabelled training audio folders")
    ap.add_argument("--model", default=None, help="teacher weights (a rotated start's rotated model)")
    ap.add_argument("--batch", type=cli.positive_int, default=16)
    ap.add_argument("--steps", type=cli.positive_int, default=3, help="timed steps per student")
    ap.add_argument("--loss", nargs="+", default=["enc", "kv", "logits"], help="loss terms")
    ap.add_argument("--no-trim", action="store_true", help="full 30-s windows (default: trimmed, as the recipe)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from host.package import load_package
    from model.distill import DistillConfig, Distiller, load_clips, sparse_model_of, teacher_in_package_order
    from model.load import load_whisper

    pkg = load_package(args.package)
    teacher = teacher_in_package_order(pkg, load_whisper(args.model))
    clips = load_clips(args.audio)
    cfg = DistillConfig(batch=args.batch, lr=3e-5, trim=not args.no_trim, losses=tuple(args.loss))
    kept = Distiller(teacher, sparse_model_of(pkg), clips, cfg)
    pseudo = kept.pseudo_labels()
    fresh = Distiller(teacher, sparse_model_of(pkg), clips, cfg, pseudo, keep_targets=False)
    order = np.random.default_rng(0).permutation(len(clips))
    batches = [[int(i) for i in order[s : s + args.batch]] for s in range(0, len(clips), args.batch)]
    with torch.no_grad():
        for b in batches:
            kept.loss(b, 0)
    times: dict = {"kept": [], "recomputed": []}
    losses: dict = {"kept": [], "recomputed": []}
    pair = [("kept", kept), ("recomputed", fresh)]
    for step in range(args.steps):
        b = batches[step % len(batches)]
        for name, d in pair if step % 2 == 0 else pair[::-1]:
            t = time.perf_counter()
            losses[name].append(d.train_step(b, step))
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    diff: List[float] = [abs(a - b) for a, b in zip(losses["kept"], losses["recomputed"])]
    print(
        f"{len(clips)} clips, batch {args.batch}, {args.steps} steps each: kept {med['kept']:.2f} s/step, "
        f"recomputed {med['recomputed']:.2f} s/step (emulated wall time, this machine); "
        f"ratio kept / recomputed {med['kept'] / med['recomputed']:.3f}; largest loss difference {max(diff):.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
