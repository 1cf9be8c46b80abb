"""What a package was built from, by content: digests of its inputs, recorded at export, compared between packages.

A package's file digest cannot say whether two builds of one command are the same package (it records the paths it
was built from), nor, when they differ, where: on another CPU the rotation, the calibration statistics or the
sensitivity analysis can round differently and move a few tiles (docs/pruning.md, session 52). ``model.export``
records in each package (``inputs``) the SHA-256 of each input in the order the pipeline uses them: the weights
pruned (after ``--model``, before ``--permute``), the calibration statistics (which choose the rates), the per-layer
rates, the statistics that choose and compensate the tiles. ``python -m model.package_inputs A.sasp B.sasp`` names
the first input where two packages part, the export options (``model.export``'s flags and paths) that differ, how
many reordered groups got the same unit order (``--permute``) and by which search (``permute_search``: proposals,
seed, margin; not recorded before session 56), and how many layers keep the same tiles.

Measured with it (docs/pruning-log.md, session 55): statistics computed with one BLAS thread instead of two differ
in the last bit of half their entries; exports without ``--permute`` keep every tile with either, and ``--permute``
does too since its search keeps no swap whose gain is rounding (``model.permute.MARGIN``; before, 14 of 17 groups got
another order at 16x16 / 25 % and the tiles of 14 of 67 layers moved).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from host import cli
from host.package import Package, load_package
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats
from model.pipeline import weights_digest

ORDER = ("weights", "calibration", "rates", "statistics")  # the pipeline's order
NAMES = {
    "weights": "weights pruned",
    "calibration": "calibration statistics",
    "rates": "per-layer rates",
    "statistics": "tile statistics",
}


def stats_digest(stats: CalibStats) -> str:
    """SHA-256 of every layer's Gram matrix, odd-window part and row count, by layer name."""
    h = hashlib.sha256()
    for name in sorted(stats.gram):
        h.update(f"{name}:{stats.rows[name]};".encode())
        h.update(np.ascontiguousarray(stats.gram[name]).tobytes())
        h.update(np.ascontiguousarray(stats.odd[name]).tobytes())
    return h.hexdigest()


def rates_digest(rates: Mapping[str, float]) -> str:
    """SHA-256 of the per-layer rates (exact: each float's shortest round-trip text)."""
    text = json.dumps({n: repr(float(r)) for n, r in rates.items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def input_digests(
    weights: WhisperWeights,
    calibration: Optional[CalibStats],
    rates: Mapping[str, float],
    statistics: Optional[CalibStats],
) -> Dict[str, Optional[str]]:
    """The ``inputs`` an export records: ``None`` for statistics it did not use."""
    calib = stats_digest(calibration) if calibration is not None else None
    tiles = calib if statistics is calibration else stats_digest(statistics) if statistics is not None else None
    return {"weights": weights_digest(weights), "calibration": calib, "rates": rates_digest(rates), "statistics": tiles}


def same_tiles(a: Package, b: Package) -> int:
    """How many layers of ``a`` keep exactly the tiles that ``b``'s layer of the same name keeps."""
    same = 0
    for name, layer in a.layers.items():
        other = b.layers.get(name)
        wa, wb = layer.weights, other.weights if other is not None else None
        same += bool(wb is not None and np.array_equal(wa.colptr, wb.colptr) and np.array_equal(wa.kidx, wb.kidx))
    return same


def search_text(package: Package) -> str:
    """The unit-order search a package records (``permute_search``), or why there is none."""
    if not package.metadata.get("permutation"):
        return "none (no --permute)"
    search = package.metadata.get("permute_search")
    if search is None:  # recorded since session 56; the margin came in session 55
        return "not recorded (exported before session 56)"
    return ", ".join(f"{k} {v:g}" for k, v in search.items())


def compare(paths: Sequence[Path]) -> List[str]:
    """Lines saying where two packages' inputs part (the first differing input), and their layers' tiles."""
    a, b = (load_package(p) for p in paths)
    inputs = [p.metadata.get("inputs") for p in (a, b)]
    out = []
    if None in inputs:
        missing = [str(p) for p, i in zip(paths, inputs) if i is None]
        out.append(f"inputs not recorded in {', '.join(missing)} (exported before they were)")
    else:
        first = next((k for k in ORDER if inputs[0].get(k) != inputs[1].get(k)), None)
        for k in ORDER:
            da, db = (str(i.get(k))[:12] for i in inputs)
            out.append(f"{NAMES[k]:24s} {da:12s} {db:12s} {'same' if da == db else 'DIFFERENT'}")
        out.append(f"first input where they part: {NAMES[first]}" if first else "every recorded input is the same")
    options = [dict(p.metadata.get("export", {})) for p in (a, b)]
    differ = [f"{k} ({options[0].get(k, '-')} / {options[1].get(k, '-')})" for k in sorted(set().union(*options))
              if options[0].get(k) != options[1].get(k)]  # fmt: skip
    out.append(f"export options that differ: {'; '.join(differ) if differ else 'none'}")
    orders = [p.metadata.get("permutation", {}) for p in (a, b)]
    if any(orders):
        groups = set(orders[0]) | set(orders[1])
        same = sum(orders[0].get(g) == orders[1].get(g) for g in groups)
        out.append(f"unit orders (--permute): {same} of {len(groups)} reordered groups the same")
        searches = [search_text(p) for p in (a, b)]
        differ = "" if searches[0] == searches[1] else f" / {searches[1]}  DIFFERENT"
        out.append(f"order search (--permute): {searches[0]}{differ}")
    out.append(f"layers keeping the same tiles: {same_tiles(a, b)} of {len(a.layers)}")
    return out


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.package_inputs", description=__doc__)
    ap.add_argument("packages", type=Path, nargs=2, metavar="PKG", help="two weight packages (.sasp)")
    args = ap.parse_args(argv)
    print("\n".join(compare(args.packages)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
