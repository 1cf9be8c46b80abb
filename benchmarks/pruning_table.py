"""Reproduce the WER-vs-sparsity tables of docs/pruning.md (resumable: finished rows are skipped).

    python benchmarks/pruning_table.py --calib /work/shared/speech/unlabelled \\
        --eval real=/work/shared/speech --eval synth=DIR --tiles 8 16 --sparsity 0.1 0.2 0.3 \\
        --methods act-ls act-ls+distill --out results/pruning.csv [--limit 30]

Each row: tile, method, target and achieved MAC sparsity, WER (jiwer, int8 reference path) on each evaluation
set, the CPU minutes spent on export/distillation, and the modeled system speedup from pruning on the board for
that tile (mean over the evaluated utterances). ``+distill`` rows fine-tune the pruned package on the calibration
audio (``model.distill``). Calibration/training audio and evaluation audio must be different folders.
Packages (--packages) and rows (--out) are reused by tile, method and sparsity: use new folders for other
--layers/--uniform/--damp/--model values.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from host.boards import board_for_array
from host.dataset import Utterance, evenly_spaced, read_librispeech
from host.driver import Accelerator
from host.package import load_package
from host.session import Record
from host.whisper import WhisperRuntime
from model.evaluate import evaluate
from model.pipeline import add_export_options, export_config_from


def first_recipe(epochs: int):
    """The recipe of the first distilled rows of docs/pruning.md: encoder-output MSE, encoder layers, Adam 3e-5,
    one clip per step, on the CPU."""
    from model.distill import DistillConfig

    return DistillConfig(epochs=epochs, lr=3e-5, batch=1, losses=("enc",), layers=r"^encoder\.", device="cpu")


def append_row(path: Path, row: dict) -> None:
    """Append ``row`` to the CSV at ``path`` (header first when the file is new)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def eval_sets(specs: Sequence[str], limit: int) -> Dict[str, List[Utterance]]:
    """The ``NAME=DIR`` evaluation sets of ``--eval``, ``limit`` evenly spaced utterances of each."""
    sets = {}
    for spec in specs:
        name, _, folder = spec.partition("=")
        sets[name] = evenly_spaced(read_librispeech(folder), limit)
    return sets


def evaluate_package(path: Path, utts: List[Utterance], board: str, trim: bool = False) -> Dict[str, float]:
    """WER, the mean modeled speedup (pruned vs dense int8 on the same array) over the utterances of ``utts`` that
    ran the model, and the ceiling: the modeled speedup if every prunable layer (``host.whisper_layers.is_prunable``)
    lost all of its tiles."""
    pkg = load_package(path)
    acc = Accelerator(pkg, "reference")
    speedups: List[Tuple[float, float]] = []

    def on_record(u: Utterance, record: Record) -> None:
        if record.calls:
            figures = record.on_board(board, acc.backend.array[0])
            speedups.append((figures.speedup, figures.max_speedup))

    try:
        res = evaluate(WhisperRuntime(pkg.weights, acc), utts, progress=True, trim=trim, on_record=on_record)
    finally:
        acc.close()
    n = len(speedups)
    return {"wer": res.wer, "speedup": sum(s[0] for s in speedups) / n, "ceiling": sum(s[1] for s in speedups) / n}


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_export_options(
        ap,
        only=("calib", "prunable", "uniform", "damp", "model", "cache_dir"),
        calib={"nargs": "+", "required": True, "help": "calibration / distillation audio"},
    )
    ap.add_argument("--eval", nargs="+", required=True, help="NAME=DIR evaluation sets (LibriSpeech layout)")
    ap.add_argument("--tiles", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    ap.add_argument("--methods", nargs="+", default=["act-ls"], help="model.prune methods, '+distill' suffix")
    ap.add_argument("--epochs", type=int, default=2, help="distillation epochs")
    ap.add_argument("--limit", type=int, default=None, help="utterances per evaluation set (evenly spaced)")
    ap.add_argument("--packages", type=Path, default=Path("results/packages"))
    ap.add_argument("--out", type=Path, default=Path("results/pruning.csv"))
    args = ap.parse_args(argv)
    from model.distill import distill
    from model.export import export_package
    from model.load import load_whisper

    base_cfg = export_config_from(args)
    weights = load_whisper(base_cfg.model)
    sets = eval_sets(args.eval, args.limit)
    done = set()
    if args.out.exists():
        with args.out.open() as f:
            done = {(r["tile"], r["method"], r["target"]) for r in csv.DictReader(f)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for tile in args.tiles:
        for method in args.methods:
            for sp in args.sparsity:
                key = (str(tile), method, f"{sp:.2f}")
                if key in done or (sp == 0 and method != args.methods[0]):
                    continue
                base = method.replace("+distill", "")
                t0 = time.process_time()
                pkg = args.packages / f"t{tile}-{base}-s{sp:.2f}.sasp"
                if not pkg.exists():
                    export_package(pkg, weights, replace(base_cfg, tile=(tile, tile), sparsity=sp, method=base))
                if method.endswith("+distill") and sp > 0:
                    dpkg = pkg.with_name(pkg.stem + f"-distill{args.epochs}.sasp")
                    if not dpkg.exists():
                        distill(pkg, weights, args.calib, dpkg, first_recipe(args.epochs), dpkg.with_suffix(".ckpt"))
                    pkg = dpkg
                cpu_min = (time.process_time() - t0) / 60
                row = {
                    "tile": tile,
                    "method": method,
                    "target": f"{sp:.2f}",
                    "mac_sparsity": f"{float(load_package(pkg).metadata.get('mac_sparsity', 0)):.3f}",
                    "cpu_min": f"{cpu_min:.1f}",
                    "board": board_for_array(tile),
                }
                for name, utts in sets.items():
                    r = evaluate_package(pkg, utts, row["board"])
                    row[f"wer_{name}"] = f"{100 * r['wer']:.2f}"
                    row["modeled_speedup"] = f"{r['speedup']:.3f}"
                    row["modeled_ceiling"] = f"{r['ceiling']:.3f}"
                append_row(args.out, row)
                print(row, flush=True)


if __name__ == "__main__":
    main()
