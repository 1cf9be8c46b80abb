"""The fixed split of the genuine LibriSpeech utterances of ``shared/speech/librispeech`` into two halves.

Pruning and distillation choices are made on the **selection** half and reported on the **report** half (issue
"Pruning that holds on LibriSpeech"). The 26 utterances come from 6 speakers; the halves are speaker-disjoint so a
choice tuned on one half cannot have learnt the other half's voices:

- selection: speakers 103 (train-clean-100, 10 utterances), 61 and 1089 (test-clean, 1 each): 12 utterances, 142 s;
- report: speakers 1272 (dev-clean, 12 utterances), 3853 and 6313 (dev-clean, 1 each): 14 utterances, 80 s.

Three more groups outside ``shared/speech`` are scored beside the halves wherever a CSV has their utterances, as
further report sets on which no choice is made: **train3** (``data/librispeech-train3``: 48 utterances of
train-clean-100 speakers 19, 26 and 27) and, from ``data/librispeech-devtest`` (130 utterances of 22 dev/test
speakers), **clean12** (its test-clean and dev-clean speakers) and **other10** (its test-other speakers, the harder
subset, kept apart).

With so few utterances a WER carries a wide spread: ``wer_by_half`` adds a bootstrap interval over utterances,
and ``dwer_by_half`` the points over a base (the dense model) with a paired bootstrap interval, which is what
decides whether a package is within a budget of points. ``dwer_by_half`` also counts how many of the base's words
the package's transcripts change (``changed``): it reads no reference, so it moves when a change (distillation)
brings a package closer to the dense model's output even where the WER, a few words either way, does not.

The pool **unseen clean** (``POOLS``: report + train3 + clean12, every clean-subset speaker no choice was made on)
is added when a package's rows span two or more of them: evaluate each folder, then give a package's CSVs
together (``--together``) over the dense model's CSVs of the same folders. The pool **selection + other10** is
the selection set since session 36: the selection half alone is one speaker (103) in most of its words, the least
sensitive of 16 speakers in every cell measured (docs/pruning-log.md, "22 more LibriSpeech speakers").

    python -m model.splits --csv EVAL.csv [EVAL2.csv ...] [--base DENSE.csv ...]   # per group WER (points over base)
    python -m model.splits --together --csv HALVES.csv TRAIN3.csv DEVTEST.csv --base D1.csv D2.csv D3.csv

``--speakers`` adds the points over the base per speaker (``dwer_by_speaker``), to see which voices a package's
loss comes from.
"""

from __future__ import annotations

import csv
import sys
import zlib
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import jiwer
import numpy as np

from host import cli

HALVES = {"selection": frozenset({"103", "61", "1089"}), "report": frozenset({"1272", "3853", "6313"})}
# report sets outside shared/speech no choice was made on (data/librispeech-train3, data/librispeech-devtest), scored
# beside the halves when a CSV has their utterances
GROUPS = {
    **HALVES,
    "train3": frozenset({"19", "26", "27"}),
    "clean12": frozenset("237 1221 1995 2300 2830 2961 3575 5105 5142 8224 8230 2412".split()),
    "other10": frozenset("367 533 1688 1998 2033 2414 2609 3005 3080 3331".split()),
}
# pooled readings, printed when a package's rows cover two or more of a pool's groups: the groups no choice was made
# on, and (since session 36) the set choices are made on: the selection half's 3 speakers with other10's 10
POOLS = {"unseen clean": ("report", "train3", "clean12"), "selection + other10": ("selection", "other10")}
BOOTSTRAP = 2000  # resamples of the utterances for the interval
INTERVAL = 0.9  # central mass of the bootstrap interval
SPEAKER_WORDS = 100  # the per-speaker spread (--speakers) counts speakers with at least this many reference words


def group_of(utt_id: str) -> Optional[str]:
    """The group of :data:`GROUPS` (``selection``, ``report``, ``train3``, ...) of a LibriSpeech id
    ``SPK-CHAPTER-UTT``, or None (none of its speakers)."""
    return group_of_speaker(utt_id.split("-")[0])


def group_of_speaker(speaker: str) -> Optional[str]:
    """The group of :data:`GROUPS` that holds LibriSpeech speaker ``speaker``, or None."""
    return next((h for h, spk in GROUPS.items() if speaker in spk), None)


def _by_group(rows: Sequence[Mapping]) -> Iterator[Tuple[str, List[Mapping]]]:
    """Each group of :data:`GROUPS` (the halves, the report sets) that has rows, with its rows; then each pool of
    :data:`POOLS` whose rows span two or more of its groups."""
    named = [(r, group_of(str(r["utt_id"]))) for r in rows]
    for group in GROUPS:
        sel = [r for r, g in named if g == group]
        if sel:
            yield group, sel
    for pool, members in POOLS.items():
        if len({g for _, g in named if g in members}) >= 2:
            yield pool, [r for r, g in named if g in members]


def word_errors(reference: str, hypothesis: str) -> Tuple[int, int]:
    """``(word errors, reference words)`` of two normalized texts (jiwer); an empty reference counts every word of
    the hypothesis as an insertion."""
    if not reference.split():
        return len(hypothesis.split()), 0
    p = jiwer.process_words(reference, hypothesis)
    return p.substitutions + p.deletions + p.insertions, p.substitutions + p.deletions + p.hits


def _counts(rows: Sequence[Mapping]) -> Tuple[np.ndarray, np.ndarray]:
    """Per-utterance word errors and reference words (:func:`word_errors`): a corpus WER, and a resample's, is their
    ratio of sums."""
    per = np.array([word_errors(r["reference"], r["hypothesis"]) for r in rows], float).reshape(-1, 2)
    return per[:, 0], per[:, 1]


def bootstrap_interval(boot: np.ndarray) -> List[float]:
    """The central ``INTERVAL`` of bootstrap resample statistics ``boot``."""
    return [float(q) for q in np.quantile(boot, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2])]


def resample_indices(n: int, group: str, seed: int = 0) -> np.ndarray:
    """``BOOTSTRAP`` resamples of ``n`` utterances, drawn from a stream of their own per group (seeded by ``seed``
    and the group's name), so a group's interval does not depend on which other groups a reading holds (before
    session 38 one stream was shared by the groups in turn)."""
    rng = np.random.default_rng([seed, zlib.crc32(group.encode())])
    return rng.integers(0, n, (BOOTSTRAP, n))


def wer_by_half(rows: Sequence[Mapping], seed: int = 0) -> Dict[str, dict]:
    """Corpus WER (jiwer, normalized ``reference``/``hypothesis`` of ``model.evaluate`` rows) per half, with the
    utterance count and a bootstrap interval; halves without utterances are left out."""
    out = {}
    for half, sel in _by_group(rows):
        err, words = _counts(sel)
        idx = resample_indices(len(sel), half, seed)
        boot = err[idx].sum(1) / np.maximum(words[idx].sum(1), 1)
        wer = float(err.sum() / max(words.sum(), 1))
        out[half] = {"wer": wer, "utterances": len(sel), "interval": bootstrap_interval(boot)}
    return out


def dwer_by_half(rows: Sequence[Mapping], base: Sequence[Mapping], seed: int = 0) -> Dict[str, dict]:
    """Points of corpus WER of ``rows`` over ``base`` (e.g. the dense model's rows) per half, with a paired
    bootstrap interval: every resample draws the same utterances for both, so what the two share (an utterance
    that is hard for both) does not widen the interval of their difference. The rows must pair with the base as
    :func:`_paired_with_base` checks. ``changed`` is the word edit rate of the transcripts against the base's
    transcripts (edits / the base's words, jiwer), references unread."""
    return {half: _paired_points(sel, paired, half, seed) for half, sel, paired in _paired_with_base(rows, base)}


def _paired_with_base(
    rows: Sequence[Mapping], base: Sequence[Mapping]
) -> Iterator[Tuple[str, List[Mapping], List[Mapping]]]:
    """Each group and pool of ``rows`` (``_by_group``) with its rows and their base rows, checked: every utterance
    of ``rows`` in a group must be in ``base`` with the same reference, and a group the rows have must have all of
    the base's utterances of that group (a CSV that ``model.evaluate`` is still writing reads as a ``UserError``,
    not as a smaller reading)."""
    by_id = {str(r["utt_id"]): r for r in base}
    in_base = dict(_by_group(base))
    for half, sel in _by_group(rows):
        missing = [str(r["utt_id"]) for r in sel if str(r["utt_id"]) not in by_id]
        if missing:
            raise cli.UserError(f"the base has no row for {missing[0]} ({len(missing)} utterances missing)")
        if half in GROUPS and len(sel) < len(in_base[half]):  # a pool is checked by its groups
            raise cli.UserError(
                f"{half}: {len(sel)} of the base's {len(in_base[half])} utterances (a model.evaluate run that has "
                "not finished?): score them all, or give a base of the same utterances"
            )
        paired = [by_id[str(r["utt_id"])] for r in sel]
        if any(a["reference"] != b["reference"] for a, b in zip(sel, paired)):
            raise cli.UserError("the base scores the same utterances against other references")
        yield half, sel, paired


def _paired_points(rows: Sequence[Mapping], paired: Sequence[Mapping], stream: str, seed: int = 0) -> dict:
    """Points of ``rows`` over their ``paired`` base rows with the paired bootstrap interval (resamples from the
    ``stream`` of that name, :func:`resample_indices`), the utterance count, reference words, both word error
    counts (``errors``, ``base_errors``) and ``changed``."""
    err, words = _counts(rows)
    base_err, _ = _counts(paired)
    idx = resample_indices(len(rows), stream, seed)
    boot = 100 * (err[idx].sum(1) - base_err[idx].sum(1)) / np.maximum(words[idx].sum(1), 1)
    errors, base_errors, n_words = int(err.sum()), int(base_err.sum()), int(words.sum())
    return {
        "points": 100 * (errors - base_errors) / max(n_words, 1),
        "utterances": len(rows),
        "words": n_words,
        "errors": errors,
        "base_errors": base_errors,
        "interval": bootstrap_interval(boot),
        "changed": _changed(rows, paired),
    }


def dwer_by_speaker(rows: Sequence[Mapping], base: Sequence[Mapping], seed: int = 0) -> Dict[str, dict]:
    """``dwer_by_half``'s figures per speaker of the groups (``SPK`` of ``SPK-CHAPTER-UTT``; each with its
    ``group``), in the order of :data:`GROUPS`, then by speaker; the checks are ``dwer_by_half``'s (a speaker's
    interval draws from a stream of its own, named after the speaker)."""
    speakers: Dict[str, List[Tuple[Mapping, Mapping]]] = {}
    for half, sel, paired in _paired_with_base(rows, base):
        if half in GROUPS:  # the pools repeat their groups' rows
            for r, b in zip(sel, paired):
                speakers.setdefault(str(r["utt_id"]).split("-")[0], []).append((r, b))
    order = sorted(speakers, key=lambda s: (list(GROUPS).index(group_of_speaker(s)), int(s)))
    return {
        s: {
            "group": group_of_speaker(s),
            **_paired_points([r for r, _ in speakers[s]], [b for _, b in speakers[s]], f"speaker {s}", seed),
        }
        for s in order
    }


def _changed(rows: Sequence[Mapping], base: Sequence[Mapping]) -> float:
    """Word edits from the base's transcripts to ``rows``' per word of the base's transcripts (``_counts`` with the
    base's transcripts as the references)."""
    err, words = _counts([{"reference": b["hypothesis"], "hypothesis": r["hypothesis"]} for r, b in zip(rows, base)])
    return float(err.sum() / max(words.sum(), 1))


def read_rows(path: Path) -> List[dict]:
    """The rows of a ``model.evaluate`` CSV; anything else (a package, a damaged file) is a ``UserError``."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise cli.UserError(f"{path}: not a model.evaluate CSV ({type(e).__name__})") from None
    missing = {"utt_id", "reference", "hypothesis"} - set(rows[0] if rows else {})
    if not rows or missing:
        raise cli.UserError(f"{path}: not a model.evaluate CSV (no rows or missing columns {sorted(missing)})")
    return rows


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.splits", description=__doc__)
    ap.add_argument("--csv", type=Path, nargs="+", required=True, help="model.evaluate --csv outputs")
    ap.add_argument(
        "--base", type=Path, nargs="+", default=None, help="also the points over these CSVs (e.g. the dense model's)"
    )
    ap.add_argument(
        "--together", action="store_true", help="the --csv files are one package's, on different folders: one line"
    )
    ap.add_argument(
        "--speakers", action="store_true", help="also the points over --base per speaker, one line each (needs --base)"
    )
    args = ap.parse_args(argv)
    if args.speakers and args.base is None:
        raise cli.UserError("--speakers gives points over a base: give --base too")
    base = read_many(args.base) if args.base is not None else None
    for paths in [args.csv] if args.together else [[p] for p in args.csv]:
        rows = read_many(paths)
        name = "+".join(str(p) for p in paths)
        line = f"{name}: {halves_text(wer_by_half(rows), name)}"
        if base is not None:
            line += f"; over {'+'.join(p.name for p in args.base)}: {dwer_text(dwer_by_half(rows, base))}"
        print(line)
        if args.speakers:
            print(speakers_text(dwer_by_speaker(rows, base)))
    return 0


def read_many(paths: Sequence[Path]) -> List[dict]:
    """The rows of several ``model.evaluate`` CSVs as one list; an utterance in two of them is a ``UserError``."""
    rows = [r for p in paths for r in read_rows(p)]
    ids = [r["utt_id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise cli.UserError(f"{dup} is in more than one of {', '.join(map(str, paths))}")
    return rows


def dwer_text(deltas: Dict[str, dict]) -> str:
    """``dwer_by_half``'s figures in words, with the word error counts behind each reading (on a few hundred
    words, one word moves it by a fraction of a point)."""
    return "; ".join(
        f"{h} {v['points']:+.2f} pts ({int(100 * INTERVAL)}% paired bootstrap {v['interval'][0]:+.1f} to "
        f"{v['interval'][1]:+.1f}; {v['errors']} word errors against the base's {v['base_errors']} of "
        f"{v['words']} words), {100 * v['changed']:.1f}% of its words changed"
        for h, v in deltas.items()
    )


def speakers_text(speakers: Dict[str, dict]) -> str:
    """``dwer_by_speaker``'s figures, one speaker per line, then the spread over the speakers with at least
    ``SPEAKER_WORDS`` reference words (their median and quartiles of points)."""
    lines = [
        f"  speaker {s} ({v['group']}, {v['utterances']} utt, {v['words']} words): {v['points']:+.2f} pts "
        f"({int(100 * INTERVAL)}% paired bootstrap {v['interval'][0]:+.1f} to {v['interval'][1]:+.1f})"
        for s, v in speakers.items()
    ]
    big = [v["points"] for v in speakers.values() if v["words"] >= SPEAKER_WORDS]
    if big:
        q1, median, q3 = np.quantile(big, [0.25, 0.5, 0.75])
        lines.append(
            f"  {len(big)} speakers with at least {SPEAKER_WORDS} words: median {median:+.2f} pts, "
            f"quartiles {q1:+.2f} / {q3:+.2f}"
        )
    return "\n".join(lines)


def halves_text(halves: Dict[str, dict], source: Union[str, Path]) -> str:
    """``wer_by_half``'s figures in words; CSVs (``source``) none of whose utterances is in the split are a
    ``UserError``."""
    if not halves:
        raise cli.UserError(f"{source}: none of its utterances is in the LibriSpeech split ({split_note()})")
    return "; ".join(
        f"{h} {100 * v['wer']:.2f}% ({v['utterances']} utt, {int(100 * INTERVAL)}% bootstrap interval "
        f"{100 * v['interval'][0]:.1f}-{100 * v['interval'][1]:.1f}%)"
        for h, v in halves.items()
    )


def split_note() -> str:
    """The split in words, for table notes."""
    return "; ".join(f"{h}: speakers {', '.join(sorted(spk, key=int))}" for h, spk in HALVES.items())


if __name__ == "__main__":
    sys.exit(main())
