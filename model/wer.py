"""Score ``model.evaluate`` CSV files with the project's normalizer or Whisper's standard English normalizer.

    python -m model.wer --csv EVAL.csv [EVAL2.csv ...] --librispeech DIR [--normalizer project whisper]

The project's normalizer (``host.text_normalize``) is what ``model.evaluate`` scores with; Whisper's
``EnglishTextNormalizer`` (the ``whisper-normalizer`` package, a copy of openai-whisper's) is what published
Whisper WERs use, so figures scored with it compare with them. The references are re-read raw from the
LibriSpeech folder and the hypotheses from the CSV's ``raw_hypothesis`` column, so both normalizers see the same
text. Per-half WER (``model.splits``) with its bootstrap interval for each normalizer; offline tooling only.

Where the two differ (``--diff``, on the 26 genuine LibriSpeech utterances of ``shared/speech/librispeech``):
Whisper's expands contractions and every "'s" ("didn't" -> "did not", "i'm" -> "i am", "rachel's" -> "rachel
is") and writes numbers as digits ("sixteen" -> "16", "thousands" -> "1000s", "oh" -> "0"); the project's keeps
contractions and possessives as one word and writes numbers as words. References and hypotheses go through the
same normalizer, so most of this cancels; what is left makes Whisper-normalized WER 0.3-1.8 points higher there
(dense int8, trimmed window: selection 8.30 -> 9.07 %, report 13.33 -> 14.43 %).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from host import cli
from host.dataset import read_librispeech
from host.text_normalize import normalize
from model.splits import halves_text, read_rows, wer_by_half

NORMALIZERS = ("project", "whisper")


@cache
def normalizer(name: str) -> Callable[[str], str]:
    """The text normalizer ``name`` (one of ``NORMALIZERS``)."""
    if name == "project":
        return normalize
    if name != "whisper":
        raise ValueError(f"unknown normalizer {name!r}: one of {', '.join(NORMALIZERS)}")
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        raise cli.UserError(
            "the whisper normalizer needs the whisper-normalizer package (pip install whisper-normalizer)"
        ) from None
    return EnglishTextNormalizer()


def read_raw_rows(path: Path) -> List[dict]:
    """The rows of a ``model.evaluate`` CSV that keeps each transcript before normalization (``raw_hypothesis``)."""
    rows = read_rows(path)
    if "raw_hypothesis" not in rows[0]:
        raise cli.UserError(f"{path}: no raw_hypothesis column (the transcript before normalization)")
    return rows


def rescore(rows: Sequence[dict], references: Dict[str, str], name: str) -> List[dict]:
    """``rows`` of a ``model.evaluate`` CSV with ``reference``/``hypothesis`` normalized by ``name`` from the raw
    reference transcript and the CSV's ``raw_hypothesis``."""
    norm = normalizer(name)
    if rows and "raw_hypothesis" not in rows[0]:
        raise cli.UserError(
            "the CSV has no raw_hypothesis column (the transcript before normalization): rerun model.evaluate"
        )
    out = []
    for r in rows:
        if r["utt_id"] not in references:
            raise cli.UserError(f"utterance {r['utt_id']} is not in the LibriSpeech folder given")
        out.append({**r, "reference": norm(references[r["utt_id"]]), "hypothesis": norm(r["raw_hypothesis"])})
    return out


def differences(rows: Sequence[dict], references: Dict[str, str]) -> List[str]:
    """Lines naming each utterance whose normalized reference or hypothesis differs between the normalizers."""
    project, whisper = rescore(rows, references, "project"), rescore(rows, references, "whisper")
    lines = []
    for p, w in zip(project, whisper):
        for side in ("reference", "hypothesis"):
            a, b = p[side].split(), w[side].split()
            if a != b:
                only_p = sorted(set(a) - set(b))
                only_w = sorted(set(b) - set(a))
                lines.append(f"{p['utt_id']} {side}: project {only_p} / whisper {only_w}")
    return lines


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.wer", description=__doc__)
    ap.add_argument("--csv", type=Path, nargs="+", required=True, help="model.evaluate --csv outputs")
    ap.add_argument("--librispeech", type=Path, required=True, help="the LibriSpeech folder they were scored on")
    ap.add_argument("--normalizer", nargs="+", choices=NORMALIZERS, default=list(NORMALIZERS))
    ap.add_argument("--diff", action="store_true", help="list where the two normalizers' texts differ")
    args = ap.parse_args(argv)
    references = {u.utt_id: u.transcript for u in read_librispeech(args.librispeech)}
    for path in args.csv:
        rows = read_raw_rows(path)
        for name in args.normalizer:
            print(f"{path} [{name}]: {halves_text(wer_by_half(rescore(rows, references, name)), path)}")
        if args.diff:
            print("\n".join(differences(rows, references)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
