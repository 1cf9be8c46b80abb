"""The pruning table on genuine LibriSpeech, per half (issue "Pruning that holds on LibriSpeech").

    python benchmarks/librispeech_table.py --rows ROWS.tsv --librispeech DIR [--sweep SWEEP_DIR] [--facts FILE]

``ROWS.tsv`` (tab-separated, with a header) names one evaluated package per line: ``array`` (8 or 16),
``target`` (the export's target sparsity), ``pattern`` (free / ffn / units), ``training`` (what was done to the
package: ``dense``, ``none``, or a distillation recipe in words), ``eval_csv`` (``model.evaluate --csv`` on the
LibriSpeech folder) and ``package`` (the ``.sasp`` that was evaluated). The ``dense`` row of an array is the
reference of its others. Printed per row: MAC sparsity counted from the package, WER of the selection and report
halves (``model.splits``) with the project's normalizer, the calibration audio the package records (clips, and the
folders where the export recorded them) and the report half with Whisper's (``model.wer``),
points over dense (paired bootstrap interval), the share of the dense model's words each half's transcripts
change (label-free), a mark on rows whose stored transcripts loop by the current loop rules (listed under the
table), and, with ``--sweep``, the modeled speedup of the package's tiles
on the dense model's own calls and host work (the sweep's dense point of that array: same utterances and decoded
tokens, every call's tiles replaced by the package's; ``host.session.BoardFigures``) on each board the sweep
modeled.

``--agreement`` also prints how far the two halves agree on the recipes of each cell (array, target, trained or
not) that has at least ``MIN_RECIPES`` rows: the rank correlation of their WERs over the cell's rows, what
choosing on one half costs on the other (the chosen row's WER there minus the best row's), and, for comparison, the
rank correlation of the report half's WER with the label-free share of words its transcripts change from the dense
model's on the same audio. It reads no more than the table: the same rows, scored with the project's normalizer.

What a row needs of its package (MAC sparsity, calibration, speedups) is recorded in ``--facts`` (default
``package-facts.json`` beside ``ROWS.tsv``) under the package path as ``ROWS.tsv`` writes it, each time the package
is read; a row whose package is no longer on disk takes them from there, so the table can be made again from the
committed evaluation CSVs and facts alone.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy.stats import spearmanr

from host import cli
from host.dataset import read_librispeech
from host.longform import RETRY_REPEATS, early_stop_reason, loop_reason
from host.package import Package, atomic_path, load_package
from host.session import BoardFigures
from host.system_model import retiled_calls
from model.splits import dwer_by_half, wer_by_half
from model.sweep import decode_calls
from model.wer import read_raw_rows, rescore

COLUMNS = ("array", "target", "pattern", "training", "eval_csv", "package")
MIN_RECIPES = 3  # rows a cell needs before --agreement compares its halves


def read_manifest(path: Path) -> List[dict]:
    """The rows of ``ROWS.tsv``, paths resolved against its folder; a missing column or file is a clear error."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    missing = set(COLUMNS) - set(rows[0] if rows else {})
    if not rows or missing:
        raise cli.UserError(f"{path}: needs a header with {', '.join(COLUMNS)} (missing {sorted(missing)})")
    for r in rows:
        r["package_as_written"] = r["package"]
        for key in ("eval_csv", "package"):
            r[key] = (path.parent / r[key]).resolve()
        if not r["eval_csv"].is_file():
            raise cli.UserError(f"{path}: eval_csv {r['eval_csv']} not found")
    return rows


def read_facts(path: Path) -> Dict[str, dict]:
    """The recorded package facts (empty when the file does not exist yet); a damaged file is a clear error."""
    if not path.exists():
        return {}
    try:
        facts = json.loads(path.read_text())
        if not isinstance(facts, dict) or not all(isinstance(v, dict) for v in facts.values()):
            raise ValueError("not an object of objects")
        return facts
    except ValueError as e:
        raise cli.UserError(f"{path}: damaged package facts ({e}); restore it from git") from None


def package_facts(r: dict, facts: Dict[str, dict], point: Optional[dict]) -> dict:
    """MAC sparsity, calibration and (with a dense ``point``) modeled speedups of the row's package: computed from
    the package when it is on disk (and recorded in ``facts``), else the recorded ones."""
    key = r["package_as_written"]
    if not r["package"].is_file():
        if key not in facts:
            raise cli.UserError(f"package {r['package']} not found and no facts recorded for it")
        return facts[key]
    pkg = load_package(r["package"])
    digest = str(pkg.metadata.get("digest", ""))
    found = {
        "digest": digest,
        "mac_sparsity": float(pkg.metadata.get("mac_sparsity", 0.0)),
        "calibration": calibration(pkg),
    }
    prior = facts.get(key, {})
    if point is not None:
        found["speedup"] = modeled_speedups(point, pkg)
    elif "speedup" in prior and prior.get("digest") and digest.startswith(prior["digest"]):
        found["speedup"] = prior["speedup"]  # the same package, modeled by an earlier run with a dense point
    facts[key] = found
    return found


def dense_point(sweep: Path, array: int) -> dict:
    """The sweep's dense point of ``array`` (its recorded calls and host work)."""
    found = sorted((sweep / "points").glob(f"a{array}-dense-*.json"))
    if not found:
        raise cli.UserError(f"{sweep}/points: no dense point of the {array}x{array} array")
    return json.loads(found[-1].read_text())


def modeled_speedups(point: dict, pkg: Package) -> Dict[str, float]:
    """Modeled dense/pruned latency ratio per board of the package's tiles on the dense point's calls."""
    tiles = {n: q.weights.nnz_per_colblock for n, q in pkg.layers.items()}
    calls = retiled_calls((c for c, count in decode_calls(point["calls"]) for _ in range(count)), tiles)
    return {b: BoardFigures(calls, point["host_ops"], b, point["array"]).speedup for b in point["modeled"]}


def calibration(pkg: Package) -> str:
    """The package's calibration audio as it records it: clip count and, where the export kept them, the folders
    (the bundled set named ``bundled``), then the ``--stats-audio`` that chose its tiles the same way (``; tiles:
    ...``); ``-`` for a package built without calibration (dense)."""
    clips = int(pkg.metadata.get("calibration_files", 0))
    if not clips:
        return "-"
    export = pkg.metadata.get("export") or {}
    text = _clips_text(clips, export.get("calib") or [])
    tiles = int(pkg.metadata.get("stats_audio_files", 0))
    return f"{text}; tiles: {_clips_text(tiles, export.get('stats_audio') or [])}" if tiles else text


BUNDLED = {"calib": "bundled", "stats": "bundled stats"}  # host/assets/<set>: the default audio of an export


def _clips_text(clips: int, folders: List[str]) -> str:
    """``clips (folder names)``, the bundled sets named as in ``BUNDLED``; the count alone without folders."""
    bundled = [Path(c).parts[-3:-1] == ("host", "assets") and Path(c).name in BUNDLED for c in folders]
    names = [BUNDLED[Path(c).name] if b else Path(c).name for c, b in zip(folders, bundled)]
    return f"{clips} ({', '.join(names)})" if names else str(clips)


def retry_reason(e: dict) -> Optional[str]:
    """Why the current rules would decode an evaluated utterance (a ``model.evaluate`` row) again, or None: its
    transcript loops (``RETRY_REPEATS``) or stops early for its length (``early_stop_reason``)."""
    text = e["raw_hypothesis"]
    return loop_reason(text, RETRY_REPEATS) or early_stop_reason(text, float(e["seconds"]))


def table(
    rows: List[dict], references: Dict[str, str], sweep: Optional[Path], facts: Optional[Dict[str, dict]] = None
) -> List[dict]:
    """One output row per manifest row (see the module's docstring); ``facts`` is read and updated."""
    facts = {} if facts is None else facts
    out = []
    points = {}
    scored = []  # each row's utterances, scored with the project's normalizer
    for r in rows:
        evals = read_raw_rows(r["eval_csv"])
        scored.append(rescore(evals, references, "project"))
        project = wer_by_half(scored[-1])
        whisper = wer_by_half(rescore(evals, references, "whisper"))
        array = int(r["array"])
        if sweep is not None and array not in points:
            points[array] = dense_point(sweep, array)
        found = package_facts(r, facts, points.get(array))
        row = {
            "array": array,
            "target": float(r["target"]),
            "mac_sparsity": found["mac_sparsity"],
            "pattern": r["pattern"],
            "training": r["training"],
            "calibration": found["calibration"],
            "selection": project["selection"],
            "report": project["report"],
            "report_whisper": whisper["report"]["wer"],
            "flagged": [(e["utt_id"], why) for e in evals if (why := retry_reason(e))],
        }
        if "speedup" in found:
            row["speedup"] = found["speedup"]
        out.append(row)
    for row, utts in zip(out, scored):
        dense = next((i for i, d in enumerate(out) if d["array"] == row["array"] and d["training"] == "dense"), None)
        row["delta"] = None if dense is None else dwer_by_half(utts, scored[dense])
    return out


def markdown(out: List[dict]) -> str:
    """The table as markdown, WER in percent with the 90 % bootstrap interval, points over dense with the paired
    one (``model.splits.dwer_by_half``)."""

    def pct(half: dict) -> str:
        lo, hi = half["interval"]
        return f"{100 * half['wer']:.2f} ({100 * lo:.1f}-{100 * hi:.1f})"

    def points(half: dict) -> str:
        lo, hi = half["interval"]
        return f"{half['points']:+.2f} ({lo:+.1f} to {hi:+.1f})"

    boards = sorted({b for r in out for b in r.get("speedup", {})})
    head = [
        "array",
        "target",
        "MAC sparsity (counted)",
        "tiles",
        "training",
        "calibration clips",
        "WER % selection (measured)",
        "WER % report (measured)",
        "dWER pts selection / report (paired 90 % interval)",
        "words changed vs dense % selection / report",
        "report, Whisper normalizer",
    ] + [f"speedup {b} (modeled)" for b in boards]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in out:
        plain = r["training"] == "dense" or r["delta"] is None
        delta = "-" if plain else " / ".join(map(points, r["delta"].values()))
        changed = "-" if plain else " / ".join(f"{100 * v['changed']:.1f}" for v in r["delta"].values())
        cells = [
            f"{r['array']}x{r['array']}",
            f"{r['target']:.2f}",
            f"{r['mac_sparsity']:.3f}",
            r["pattern"],
            r["training"] + (" †" if r["flagged"] else ""),
            r["calibration"],
            pct(r["selection"]),
            pct(r["report"]),
            delta,
            changed,
            f"{100 * r['report_whisper']:.2f}",
        ] + [f"{r['speedup'][b]:.3f}x" if b in r.get("speedup", {}) else "-" for b in boards]
        lines.append("| " + " | ".join(cells) + " |")
    flagged = [r for r in out if r["flagged"]]
    if flagged:
        lines += [
            "",
            "† transcripts that loop or stop early by the current rules (`host.longform.loop_reason` with "
            "`RETRY_REPEATS`, `early_stop_reason`): evaluated before the rule that catches them, or the fallbacks did "
            "not clear them:",
        ]
        for r in flagged:
            where = "; ".join(f"{utt}: {why}" for utt, why in r["flagged"])
            lines.append(f"- {r['array']}x{r['array']} / {r['target']:.2f}, {r['pattern']}, {r['training']}: {where}")
    return "\n".join(lines)


def recipe_kind(training: str) -> Optional[str]:
    """``no training`` or ``distilled`` from a row's ``training`` words; ``None`` for the dense reference."""
    if training == "dense":
        return None
    return "distilled" if training.startswith("distilled") else "no training"


def chosen_cost(by: np.ndarray, other: np.ndarray) -> float:
    """Points of WER on the other half that choosing the best row on one half (``by``, ties averaged) costs over
    the other half's best row."""
    return float(100 * (other[by == by.min()].mean() - other.min()))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of ``a`` and ``b``; NaN where either is constant or has a NaN."""
    if np.isnan(a).any() or np.isnan(b).any() or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def agreement(out: List[dict]) -> List[dict]:
    """Per cell ``(array, target, kind)`` of :func:`table`'s rows with at least ``MIN_RECIPES`` rows: the Spearman
    rank correlation of the selection and report WERs over its rows, :func:`chosen_cost` both ways, and the rank
    correlation of the report WER with the words changed from the dense model on the report half."""
    cells: Dict[Tuple[int, float, str], List[dict]] = {}
    for r in out:
        kind = recipe_kind(r["training"])
        if kind is not None:
            cells.setdefault((r["array"], r["target"], kind), []).append(r)
    result = []
    for (array, target, kind), rows in sorted(cells.items()):
        if len(rows) < MIN_RECIPES:
            continue
        sel = np.array([r["selection"]["wer"] for r in rows])
        rep = np.array([r["report"]["wer"] for r in rows])
        changed = [r["delta"]["report"]["changed"] if r["delta"] else np.nan for r in rows]
        result.append(
            {
                "array": array,
                "target": target,
                "kind": kind,
                "rows": len(rows),
                "spearman": rank_correlation(sel, rep),
                "chosen_on_selection": chosen_cost(sel, rep),
                "chosen_on_report": chosen_cost(rep, sel),
                "spearman_changed": rank_correlation(np.array(changed), rep),
            }
        )
    return result


def _rho(value: float) -> str:
    """A rank correlation in the table ("-" where there is none)."""
    return "-" if np.isnan(value) else f"{value:+.2f}"


def agreement_markdown(cells: List[dict]) -> str:
    """:func:`agreement` as markdown."""
    head = [
        "array",
        "target",
        "rows",
        "Spearman rho, selection vs report WER",
        "chosen on selection: report pts over report's best",
        "chosen on report: selection pts over selection's best",
        "Spearman rho, report WER vs words changed on report audio (label-free)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        cells_text = [
            f"{c['array']}x{c['array']}",
            f"{c['target']:.2f}, {c['kind']}",
            str(c["rows"]),
            _rho(c["spearman"]),
            f"+{c['chosen_on_selection']:.2f}",
            f"+{c['chosen_on_report']:.2f}",
            _rho(c["spearman_changed"]),
        ]
        lines.append("| " + " | ".join(cells_text) + " |")
    return "\n".join(lines)


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python benchmarks/librispeech_table.py", description=__doc__)
    ap.add_argument("--rows", type=Path, required=True, help="manifest of evaluated packages (TSV)")
    ap.add_argument("--librispeech", type=Path, required=True, help="the LibriSpeech folder they were scored on")
    ap.add_argument("--sweep", type=Path, default=None, help="a model.sweep output folder (its dense points)")
    ap.add_argument("--facts", type=Path, default=None, help="package facts (default: package-facts.json by ROWS)")
    ap.add_argument("--agreement", action="store_true", help="also how far the halves agree on each cell's recipes")
    args = ap.parse_args(argv)
    references = {u.utt_id: u.transcript for u in read_librispeech(args.librispeech)}
    facts_path = args.facts or args.rows.parent / "package-facts.json"
    facts = read_facts(facts_path)
    out = table(read_manifest(args.rows), references, args.sweep, facts)
    print(markdown(out))
    if args.agreement:
        print("\n" + agreement_markdown(agreement(out)))
    with atomic_path(facts_path) as tmp:
        tmp.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
