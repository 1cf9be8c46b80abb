"""Plots of a co-design sweep (matplotlib, Agg backend, PNG): see ``model.sweep``.

* ``wer_vs_speedup_<board>.png``: WER (measured, jiwer) vs modeled speedup over the dense point, one curve per array;
* ``pareto_energy_<board>.png``: WER vs modeled energy per utterance, every point, the Pareto front joined;
* ``layer_rates_<point>.png``: per-layer tile pruning rate the allocator chose for one point (package metadata).

    python -m model.plots results/sweep            # re-draw from OUT/sweep.json and OUT/points/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DPI = 90
MARKERS = "osD^v<>ph*"


def _label(rows: List[dict], field: str) -> str:
    for r in rows:
        if field in r:
            return r[field]["label"]
    return "?"


def plot_wer_vs_speedup(rows: List[dict], board: str, path: Path) -> Path:
    """WER vs modeled speedup (vs the dense point of the same array), one curve per array size."""
    rows = [r for r in rows if r["board"] == board and "speedup" in r]
    fig, ax = plt.subplots(figsize=(5.6, 3.8), dpi=DPI)
    for i, a in enumerate(sorted({r["array"] for r in rows})):
        pts = sorted((r for r in rows if r["array"] == a), key=lambda r: r["target_sparsity"])
        xs = [r["speedup"]["value"] for r in pts]
        ys = [100 * r["wer"]["value"] for r in pts]
        ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], label=f"{a}x{a}")
        for r, x, y in zip(pts, xs, ys):
            ax.annotate(f"{r['target_sparsity']:g}", (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel(f"speedup from pruning vs dense int8, same array ({_label(rows, 'speedup')})")
    ax.set_ylabel(f"WER % ({_label(rows, 'wer')})")
    ax.set_title(f"{board}: WER vs speedup (labels: target sparsity)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(title="array", fontsize=7, title_fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def pareto_front(points: Sequence[dict]) -> List[dict]:
    """Points not dominated in (energy, WER), both minimized; sorted by energy."""
    front: List[dict] = []
    best = float("inf")
    for r in sorted(points, key=lambda r: (r["energy_j"]["value"], r["wer"]["value"])):
        if r["wer"]["value"] < best:
            front.append(r)
            best = r["wer"]["value"]
    return front


def plot_pareto_energy(rows: List[dict], board: str, path: Path) -> Path:
    """WER vs modeled energy per utterance; the Pareto front (over the arrays that fit the board) joined; arrays
    that do not fit hollow."""
    rows = [r for r in rows if r["board"] == board]
    fig, ax = plt.subplots(figsize=(5.6, 3.8), dpi=DPI)
    for i, a in enumerate(sorted({r["array"] for r in rows})):
        pts = [r for r in rows if r["array"] == a]
        fits = pts[0]["fits"]["value"]
        ax.scatter(
            [r["energy_j"]["value"] for r in pts],
            [100 * r["wer"]["value"] for r in pts],
            marker=MARKERS[i % len(MARKERS)],
            label=f"{a}x{a}" + ("" if fits else " (does not fit)"),
            facecolors=None if fits else "none",
            edgecolors=f"C{i}",
            color=f"C{i}",
        )
    fitting = [r for r in rows if r["fits"]["value"]]
    front = pareto_front(fitting or rows)
    ax.plot(
        [r["energy_j"]["value"] for r in front],
        [100 * r["wer"]["value"] for r in front],
        "k--",
        lw=1,
        label="Pareto front" + (" (arrays that fit)" if fitting and len(fitting) < len(rows) else ""),
    )
    for r in front:
        ax.annotate(
            f"{r['array']}/{r['target_sparsity']:g}",
            (r["energy_j"]["value"], 100 * r["wer"]["value"]),
            fontsize=6,
            xytext=(3, 2),
            textcoords="offset points",
        )
    ax.set_xlabel(f"energy per utterance, J ({_label(rows, 'energy_j')})")
    ax.set_ylabel(f"WER % ({_label(rows, 'wer')})")
    ax.set_title(f"{board}: WER vs energy (front labels: array/sparsity)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _short(layer: str) -> str:
    return (
        layer.replace("encoder.blocks.", "e")
        .replace("decoder.blocks.", "d")
        .replace("encoder.", "e.")
        .replace("cross_attn.", "x.")
        .replace("attn.", "a.")
    )


def plot_layer_rates(point: dict, path: Path) -> Path:
    """Per-layer fraction of tiles pruned in the point's package (the allocator's choice), counted."""
    layers: Dict[str, dict] = point["package"]["layers"]
    names = list(layers)
    rates = [layers[n]["rate"] for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.14 * len(names)), 3.4), dpi=DPI)
    colors = ["C0" if n.startswith("encoder.") else "C1" for n in names]
    ax.bar(range(len(names)), rates, color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([_short(n) for n in names], rotation=90, fontsize=5)
    ax.set_ylabel("tiles pruned (counted)")
    ax.set_ylim(0, max(0.05, max(rates) * 1.1))
    ax.set_title(
        f"{point['key']}: per-layer pruning rate ({point.get('allocation')} allocation); "
        f"MAC sparsity {point['mac_sparsity']['value']:.3f} (counted); encoder blue, decoder orange",
        fontsize=8,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def default_plot_point(summary: dict, points: Dict[str, dict]) -> Optional[str]:
    """The headline point of the first board's smallest array, else the most pruned point."""
    for board in summary.get("headline", {}).values():
        for a in sorted(board, key=int):
            if board[a]["target_sparsity"] > 0:
                return board[a]["point"]
    pruned = [k for k, p in points.items() if p["target_sparsity"] > 0]
    return max(pruned, key=lambda k: points[k]["target_sparsity"]) if pruned else None


def plot_all(
    summary: dict, points: Dict[str, dict], out_dir: Path, plot_point: Optional[str] = None
) -> Dict[str, Path]:
    """Every plot of a sweep into ``out_dir``; returns ``{name: path}``."""
    rows = summary["rows"]
    files: Dict[str, Path] = {}
    for board in summary["config"]["boards"]:
        files[f"wer_vs_speedup_{board}"] = plot_wer_vs_speedup(rows, board, out_dir / f"wer_vs_speedup_{board}.png")
        files[f"pareto_energy_{board}"] = plot_pareto_energy(rows, board, out_dir / f"pareto_energy_{board}.png")
    key = plot_point or default_plot_point(summary, points)
    if key is not None:
        if key not in points:
            raise ValueError(f"--plot-point {key!r} is not in the sweep; points: {', '.join(points)}")
        files["layer_rates"] = plot_layer_rates(points[key], out_dir / f"layer_rates_{key}.png")
    return files


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m model.plots", description=__doc__)
    ap.add_argument("out", type=Path, help="sweep output folder (with sweep.json and points/)")
    ap.add_argument("--plot-point", default=None, help="point key for the per-layer rate plot")
    ap.add_argument("--dest", type=Path, default=None, help="where to write the PNGs (default OUT/plots)")
    args = ap.parse_args(argv)
    summary = json.loads((args.out / "sweep.json").read_text())
    keys = {r["point"] for r in summary["rows"]}
    points = {}
    for f in sorted((args.out / "points").glob("*.json")):
        p = json.loads(f.read_text())
        if p["key"] in keys and p["fingerprint"] == summary.get("fingerprint", p["fingerprint"]):
            points[p["key"]] = p
    for name, path in plot_all(summary, points, args.dest or args.out / "plots", args.plot_point).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
