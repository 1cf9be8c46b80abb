"""A package's readings on the LibriSpeech report sets in one command, as ``docs/pruning.md``'s per-cell tables
give them (issue "Pruning that holds on LibriSpeech").

    python -m model.report_sets --package P.sasp --out DIR/NAME [--halves DIR] [--speakers]

Evaluates the package (``model.evaluate``: int8 path, trimmed encoder windows, as the tables) on each set of
:data:`REPORT_SETS`, the genuine LibriSpeech halves of ``shared/speech/librispeech`` (left out, with a note, where
that folder is not beside the repository and ``--halves`` is not given), ``data/librispeech-train3`` and
``data/librispeech-devtest``, into ``NAME-halves.csv``, ``NAME-t3.csv`` and ``NAME-dt.csv`` (an interrupted run
resumes from them, as ``model.evaluate --csv`` does). Then prints the WER of every group and pool and the points
over dense int8 with paired 90 % intervals (``model.splits --together``) against the dense int8 package's CSVs of
the same sets, committed under ``results/librispeech-halves`` (``tests/test_report_sets.py`` checks that the
dense package the code builds now transcribes as they say). No choice may be made on a report set: the selection
half is in the halves' CSV, and ``selection + other10`` is the pool that choices are made on (``model.splits``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from host import cli
from model import evaluate, splits

ROOT = Path(__file__).resolve().parents[1]
DENSE = ROOT / "results" / "librispeech-halves"  # the dense int8 package's CSVs, trimmed encoder windows

REPORT_SETS: Dict[str, Tuple[Path, Path]] = {  # name: (LibriSpeech-layout folder, the dense int8 package's CSV)
    "halves": (ROOT.parent / "shared" / "speech" / "librispeech", DENSE / "dense-trimmed.csv"),
    "t3": (ROOT / "data" / "librispeech-train3", DENSE / "s34-t3-dense8.csv"),
    "dt": (ROOT / "data" / "librispeech-devtest", DENSE / "s35-m-dense8.csv"),
}


def sets_to_run(halves: Optional[Path]) -> List[Tuple[str, Path, Path]]:
    """``(name, folder, dense CSV)`` of each set to evaluate: ``halves`` replaces the halves' folder; the default
    halves' folder is left out where it is absent, a given one that is absent is a ``UserError``."""
    chosen = []
    for name, (folder, base) in REPORT_SETS.items():
        if name == "halves" and halves is not None:
            if not halves.is_dir():
                raise cli.UserError(f"--halves {halves}: no such folder")
            folder = halves
        elif not folder.is_dir():
            if name == "halves":
                print(f"note: {folder} is absent, the halves are left out (give --halves DIR)", file=sys.stderr)
                continue
            raise cli.UserError(f"{folder}: the report set is missing from this checkout")
        chosen.append((name, folder, base))
    return chosen


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.report_sets", description=__doc__)
    ap.add_argument("--package", type=Path, required=True, help="weight package (.sasp) to evaluate")
    ap.add_argument(
        "--out", type=Path, required=True, help="path prefix of the CSVs: writes OUT-halves.csv, OUT-t3.csv, OUT-dt.csv"
    )
    ap.add_argument(
        "--halves",
        type=Path,
        default=None,
        help="the genuine LibriSpeech halves' folder (default: shared/speech/librispeech beside the repository)",
    )
    ap.add_argument("--speakers", action="store_true", help="also the points over dense per speaker")
    args = ap.parse_args(argv)
    if not args.package.is_file():
        raise cli.UserError(f"--package {args.package}: no such file")
    if not args.out.parent.is_dir():
        raise cli.UserError(f"--out {args.out}: the folder {args.out.parent} does not exist")
    chosen = sets_to_run(args.halves)
    csvs = [args.out.with_name(f"{args.out.name}-{name}.csv") for name, _, _ in chosen]
    debug = ["--debug"] * args.debug
    for (name, folder, _), out in zip(chosen, csvs):
        print(f"{name}: {folder}", flush=True)
        rc = evaluate.main(["--librispeech", str(folder), "--package", str(args.package), "--csv", str(out), *debug])
        if rc:
            return rc
    bases = [str(base) for _, _, base in chosen]
    speakers = ["--speakers"] * args.speakers
    return splits.main(["--together", "--csv", *map(str, csvs), "--base", *bases, *speakers, *debug])


if __name__ == "__main__":
    sys.exit(main())
