"""How far a pruned package's output moves from the dense model's, without labels.

    python -m model.divergence --base DENSE.sasp --package P [P ...] --audio DIR [DIR ...] [--half selection]

Every 30-s window of the audio (``host.longform.load_windows``), with the encoder window trimmed as the demo and
``model.evaluate`` run it: the base package (the dense int8 model) encodes it and decodes greedily; each package
encodes the same window and is teacher-forced on the base's transcript. Per window: the mean KL divergence of the
package's next-token distributions from the base's (the quantity ``model.sensitivity`` predicts layer by layer),
and the share of positions whose most likely token differs from the base's (top-1 disagreement). ``--decode``
also transcribes each window with the base and with each package as the demo and ``model.evaluate`` do
(``host.longform.transcribe_window``: trimmed encoder window, loop fallbacks, no-speech rule) and counts the words
a package's transcript changes from the base's (normalized, jiwer): what a WER sees of a pruning where the dense
model is right, including errors that compound as the decoder runs on its own tokens, which the teacher-forced
measures miss. No transcript is read, so any unlabelled speech can score a package, far more of it than the 26
labelled LibriSpeech utterances; a WER still decides (docs/pruning.md shows how they agree).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from host import cli
from host.dataset import evenly_spaced, list_audio_files
from host.longform import load_windows, transcribe_window
from host.package import atomic_path, load_package
from host.session import runtime_from_package
from host.text_normalize import normalize
from host.whisper import WhisperRuntime
from model.calibrate import teacher_forced_pass
from model.sensitivity import mean_kl
from model.splits import BOOTSTRAP, HALVES, bootstrap_interval, group_of, word_errors


@dataclass
class Divergence:
    """One package's divergence from the base on one window."""

    kl: float  # mean over the transcript's positions
    disagree: float  # share of positions whose top-1 token differs from the base's
    edits: Optional[int] = None  # word edits from the base's transcript to the package's own (--decode)
    base_words: Optional[int] = None  # words of the base's transcript (--decode)


def window_divergence(base_logits: np.ndarray, logits: np.ndarray) -> Divergence:
    """KL(base || package) and top-1 disagreement, averaged over the positions of one teacher-forced pass."""
    return Divergence(mean_kl(base_logits, logits), float((base_logits.argmax(-1) != logits.argmax(-1)).mean()))


def word_edits(base_text: str, text: str) -> Tuple[int, int]:
    """``(word edits, base words)`` from ``base_text`` to ``text``, both normalized (``host.text_normalize``), as
    ``model.splits`` counts the words a transcript changes (an empty base: every word of ``text`` is inserted)."""
    return word_errors(normalize(base_text), normalize(text))


def divergences(
    base: WhisperRuntime, packages: Dict[str, WhisperRuntime], files: Sequence[Path], decode: bool = False
) -> Dict[str, List[Divergence]]:
    """``{package: [divergence per window]}`` of every window of ``files`` (trimmed encoder windows); ``decode``:
    also the :func:`word_edits` from the base's transcript of the window to each package's, both as deployed
    (``transcribe_window``)."""
    out: Dict[str, List[Divergence]] = {name: [] for name in packages}
    for f in tqdm(files, desc="divergence", unit="clip"):
        for audio in load_windows(f):
            mel, ctx = base.features(audio), base.audio_ctx(len(audio))
            enc = base.encode(mel, ctx)
            tokens = base.decode(enc).tokens
            ref = teacher_forced_pass(base, enc, tokens)
            said = transcribe_window(base, audio, 0.0, trim=True).text if decode else ""
            for name, rt in packages.items():
                d = window_divergence(ref, teacher_forced_pass(rt, rt.encode(mel, ctx), tokens))
                if decode:
                    d.edits, d.base_words = word_edits(said, transcribe_window(rt, audio, 0.0, trim=True).text)
                out[name].append(d)
    return out


def words_changed(ds: Sequence[Divergence]) -> float:
    """Word edits per base word over the windows ``ds`` (decoded with ``--decode``)."""
    return sum(d.edits or 0 for d in ds) / max(sum(d.base_words or 0 for d in ds), 1)


def interval(values: Sequence[float], seed: int = 0) -> tuple:
    """Mean of ``values`` and its central ``INTERVAL`` bootstrap interval over the windows."""
    v = np.asarray(values, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(v), size=(BOOTSTRAP, len(v)))
    lo, hi = bootstrap_interval(v[idx].mean(axis=1))
    return float(v.mean()), lo, hi


def pick_files(dirs: Sequence[Path], half: Optional[str], limit: Optional[int]) -> List[Path]:
    """The audio files of ``dirs`` (of one LibriSpeech ``half`` only), ``limit`` of them evenly spaced."""
    files = [f for f in list_audio_files(*dirs) if half is None or group_of(f.stem) == half]
    if not files:
        raise cli.UserError(f"no audio files{f' of the {half} half' if half else ''} under {', '.join(map(str, dirs))}")
    return evenly_spaced(files, limit)


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.divergence", description=__doc__)
    ap.add_argument("--base", type=Path, required=True, help="the reference package (the dense int8 model)")
    ap.add_argument("--package", type=Path, nargs="+", required=True, help="packages to score against the base")
    ap.add_argument("--audio", type=Path, nargs="+", required=True, help="folders of unlabelled audio (recursive)")
    ap.add_argument("--half", choices=tuple(HALVES), default=None, help="only this LibriSpeech half (model.splits)")
    ap.add_argument("--limit", type=cli.positive_int, default=None, help="at most N files, evenly spaced")
    ap.add_argument(
        "--decode",
        action="store_true",
        help="also transcribe each window as deployed (loop fallbacks, no-speech rule) with the base and each "
        "package and count the words a package's transcripts change from the base's (slower)",
    )
    ap.add_argument(
        "--csv", type=Path, default=None, help="per-window rows (package, window, kl, disagree[, edits, base_words])"
    )
    args = ap.parse_args(argv)
    files = pick_files(args.audio, args.half, args.limit)
    base = runtime_from_package(load_package(args.base))
    packages = {str(p): runtime_from_package(load_package(p)) for p in args.package}
    res = divergences(base, packages, files, args.decode)
    if args.csv is not None:
        extra = (lambda d: (d.edits, d.base_words)) if args.decode else (lambda d: ())
        rows = [(name, i, d.kl, d.disagree, *extra(d)) for name, ds in res.items() for i, d in enumerate(ds)]
        with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["package", "window", "kl", "disagree", *(["edits", "base_words"] if args.decode else [])])
            w.writerows(rows)  # file order
    windows = len(next(iter(res.values())))
    print(f"{len(files)} files, {windows} windows (trimmed), int8 kernel arithmetic, base {args.base}")
    first = next(iter(res))
    for name, ds in res.items():
        kl, lo, hi = interval([d.kl for d in ds])
        dis = 100 * float(np.mean([d.disagree for d in ds]))
        line = f"{name}: KL {kl:.4f} (90% bootstrap {lo:.4f}-{hi:.4f}), top-1 disagreement {dis:.2f}%"
        if args.decode:
            words = sum(d.base_words or 0 for d in ds)
            line += f", words changed from the base's transcripts {100 * words_changed(ds):.2f}% of {words}"
        if name != first:
            diff, lo, hi = interval([d.kl - f.kl for d, f in zip(ds, res[first])])
            line += f"; KL minus the first package's {diff:+.4f} (90% paired bootstrap {lo:+.4f} to {hi:+.4f})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
