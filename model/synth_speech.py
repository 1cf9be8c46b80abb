"""Synthesize a small LibriSpeech-layout speech set with offline TTS (flite, espeak-ng).

Layout written under ``--out DIR`` (same as LibriSpeech, so ``model.evaluate`` reads it as is)::

    DIR/SPEAKERS.TXT                                   speaker id -> TTS voice
    DIR/<speaker>/<chapter>/<speaker>-<chapter>-<utt:04d>.flac   16 kHz mono 16-bit FLAC
    DIR/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt        "UTTID TRANSCRIPT" lines

Each TTS voice is one "speaker".  Transcripts follow the LibriSpeech convention (uppercase,
apostrophes kept, no other punctuation, numbers spelled out): the sentences below are written
with numbers already in words, so the transcript is just the normalized sentence.

Examples::

    python -m model.synth_speech --out data/synth --count 24 --seed 0
    python -m model.synth_speech --out data/synth --bench 5 30        # adds bench_5s / bench_30s clips
    python -m model.synth_speech --say "Hello there." --voice flite:slt --out hello.flac

Needs the ``flite`` and ``espeak-ng`` programs (``apt-get install flite espeak-ng``).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from host import cli
from host.audio import SAMPLE_RATE, prepare_audio
from host.dataset import read_librispeech

__all__ = [
    "SENTENCES",
    "VOICES",
    "Voice",
    "TTSUnavailableError",
    "normalize_transcript",
    "check_tools",
    "synthesize",
    "synthesize_set",
    "is_complete_set",
    "synthesize_long",
    "main",
]

INSTALL_HINT = "apt-get install flite espeak-ng"
PEAK = 0.7  # peak level after synthesis (about -3 dBFS); the engines differ widely in loudness
ESPEAK_WPM = 165  # espeak-ng's default is 175 words/minute; 165 is an ordinary reading pace
GAP_SECONDS = 0.3  # silence between sentences in synthesize_long


class TTSUnavailableError(RuntimeError):
    """A TTS program (flite or espeak-ng) or one of its voices is not installed."""


@dataclass(frozen=True)
class Voice:
    key: str  # "engine:name", e.g. "flite:slt"
    engine: str  # "flite" or "espeak-ng"
    name: str  # the engine's own voice name
    speaker: int  # LibriSpeech-style speaker id
    chapter: int  # LibriSpeech-style chapter id
    sex: str  # "M" or "F", for SPEAKERS.TXT


# Made-up ids that do not collide with LibriSpeech speakers (< 10000) or shared/speech/other (10xxx).
VOICES: Tuple[Voice, ...] = (
    Voice("flite:kal", "flite", "kal", 20001, 1, "M"),  # 8 kHz diphone voice: telephone band
    Voice("flite:kal16", "flite", "kal16", 20002, 1, "M"),
    Voice("flite:slt", "flite", "slt", 20003, 1, "F"),
    Voice("flite:rms", "flite", "rms", 20004, 1, "M"),
    Voice("flite:awb", "flite", "awb", 20005, 1, "M"),  # Scottish English
    Voice("espeak-ng:en-us", "espeak-ng", "en-us", 20006, 1, "M"),
    Voice("espeak-ng:en-gb", "espeak-ng", "en-gb", 20007, 1, "M"),
)
_BY_KEY: Dict[str, Voice] = {v.key: v for v in VOICES}

# Written for this project.  Numbers are words already; keep every sentence free of digits.
SENTENCES: Tuple[str, ...] = (
    "Could you pick up some bread and milk on your way home tonight?",
    "The train to the city leaves from platform four every twenty minutes.",
    "She forgot her umbrella, so she waited under the bridge until the rain stopped.",
    "Our neighbors planted tomatoes, beans and a row of sunflowers along the fence.",
    "Please remind me to call the dentist tomorrow morning.",
    "The meeting has been moved to Thursday afternoon at three o'clock.",
    "He spent the whole weekend painting the kitchen a pale shade of green.",
    "It's colder than usual for April, so bring a warm jacket.",
    "The library closes early on Sundays, but the reading room stays open.",
    "My grandmother still writes letters by hand and mails them every Monday.",
    "We ordered two large pizzas and a salad for the whole team.",
    "The dog barked at the mail carrier and then went back to sleep.",
    "After dinner we took a short walk around the lake.",
    "The bakery on the corner sells the best cinnamon rolls in town.",
    "I can't find my keys anywhere, have you seen them?",
    "The children built a small castle out of sand and seashells.",
    "Turn left at the next traffic light and park behind the blue building.",
    "The concert starts at eight, so we should leave the house by seven.",
    "He read the instructions twice before he started assembling the bookshelf.",
    "The weather forecast says it will be sunny for the rest of the week.",
    "Remember to water the plants while we are away on vacation.",
    "The museum opened a new exhibit about ancient maps and sailing ships.",
    "A cup of hot tea is exactly what I need right now.",
    "The server restarted after the software update finished installing.",
    "Each processing element multiplies two numbers and adds the result to its sum.",
    "The compiler reported an error on line forty two of the main file.",
    "We measured the latency of the network at about fifteen milliseconds.",
    "Pruning removes small weights so the model runs faster on the board.",
    "The battery lasts for nearly ten hours when the screen is dimmed.",
    "Please save your work before you shut down the computer.",
    "The sensor sends a new reading to the database once every second.",
    "Our test suite runs automatically whenever someone pushes a change.",
    "The memory on this board is limited to five hundred and twelve megabytes.",
    "Speech recognition works much better in a quiet room than on a busy street.",
    "The hotel room was small, but the view of the harbor was wonderful.",
    "Three students stayed after class to ask about the final exam.",
    "The recipe calls for two eggs, a cup of flour and a pinch of salt.",
    "Our flight was delayed by almost an hour because of the fog.",
    "She practices the piano for thirty minutes every evening after school.",
    "The farmer's market is busiest early on Saturday mornings.",
    "If the printer jams again, open the side panel and remove the paper.",
    "The old bridge was closed for repairs during most of the summer.",
    "He answered every question calmly and thanked the audience at the end.",
    "Nineteen people signed up for the cooking class this month.",
)


def normalize_transcript(text: str) -> str:
    """LibriSpeech-style transcript: uppercase A-Z, apostrophes kept, hyphens and other
    punctuation removed (hyphens become spaces), single spaces.  Digits are rejected."""
    if re.search(r"\d", text):
        raise ValueError(f"spell numbers out in words, LibriSpeech style: {text!r}")
    t = text.upper().replace("\u2019", "'").replace("-", " ")
    t = re.sub(r"[^A-Z' ]+", " ", t)
    t = re.sub(r"(?<![A-Z])'|'(?![A-Z])", " ", t)  # quote marks, not apostrophes inside words
    return " ".join(t.split())


def check_tools(engines: Sequence[str] = ("flite", "espeak-ng")) -> None:
    """Raise :class:`TTSUnavailableError` if one of the TTS programs is not on PATH."""
    missing = [e for e in engines if shutil.which(e) is None]
    if missing:
        raise TTSUnavailableError(
            f"TTS program(s) not found on PATH: {', '.join(missing)}; install them with `{INSTALL_HINT}`"
        )


def _resolve_voice(voice) -> Voice:
    if isinstance(voice, Voice):
        return voice
    key = str(voice)
    if key in _BY_KEY:
        return _BY_KEY[key]
    matches = [v for v in VOICES if v.name == key]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(v.key for v in VOICES)
    raise ValueError(f"unknown voice {voice!r}; known voices: {known}")


def _run(cmd: List[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout}")


def _render(text: str, voice: Voice) -> np.ndarray:
    """Run the TTS engine; return float32 mono 16 kHz samples at peak :data:`PEAK`."""
    check_tools([voice.engine])
    with tempfile.TemporaryDirectory(prefix="synth_speech_") as tmp:
        wav = Path(tmp) / "tts.wav"
        if voice.engine == "flite":
            _run(["flite", "-voice", voice.name, "-t", text, "-o", str(wav)])
        else:
            _run(["espeak-ng", "-v", voice.name, "-s", str(ESPEAK_WPM), "-w", str(wav), text])
        if not wav.exists() or wav.stat().st_size == 0:
            raise TTSUnavailableError(
                f"{voice.engine} produced no audio for voice {voice.name!r} (is the voice installed?"
                f" try `{INSTALL_HINT}`)"
            )
        samples, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    # Downmix + exact-ratio resample_poly to 16 kHz (flite kal is 8 kHz, espeak-ng 22.05 kHz).
    x = prepare_audio(samples, rate, max_seconds=None, source=f"{voice.key} output")
    peak = float(np.max(np.abs(x)))
    if peak > 0:
        x = x * np.float32(PEAK / peak)
    return x.astype(np.float32)


def _write_flac(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def synthesize(text: str, voice, path) -> Path:
    """Speak ``text`` with ``voice`` ("flite:slt", "espeak-ng:en-gb", a bare name such as "slt",
    or a :class:`Voice`) into ``path`` as 16 kHz mono 16-bit FLAC.  Returns the path."""
    v = _resolve_voice(voice)
    out = Path(path)
    _write_flac(out, _render(text, v))
    return out


def _assign(count: int, seed: int) -> List[Tuple[Voice, str]]:
    """Deterministic (voice, sentence) pairs: sentences in a seeded order (each used once before
    any repeats), voices round-robin in a seeded order so every voice gets a fair share."""
    rng = random.Random(seed)
    voices = list(VOICES)
    rng.shuffle(voices)
    pairs: List[Tuple[Voice, str]] = []
    order: List[str] = []
    for i in range(count):
        if not order:
            order = list(SENTENCES)
            rng.shuffle(order)
        pairs.append((voices[i % len(voices)], order.pop()))
    return pairs


SPEAKERS_HEADER = "; Synthesized speech (model.synth_speech): one TTS voice per speaker"


def is_complete_set(out_dir: Path, count: int, seed: int) -> bool:
    """Whether ``out_dir`` holds a whole set written by :func:`synthesize_set` with ``count`` and ``seed``."""
    speakers = Path(out_dir) / "SPEAKERS.TXT"
    try:
        lines = speakers.read_text(encoding="utf-8").splitlines()
        utts = read_librispeech(out_dir)
        return (
            lines[:2] == [SPEAKERS_HEADER, f"; count={count} seed={seed}"]
            and len(utts) == count
            and all(sf.info(str(u.path)).frames > 0 for u in utts)
        )
    except (OSError, ValueError, RuntimeError):
        return False


def _check_target(out_dir: Path, replace: bool) -> None:
    """Refuse to replace anything but a missing or empty folder or an earlier synthesized set (unless ``replace``)."""
    if replace or not out_dir.exists():
        return
    speakers = out_dir / "SPEAKERS.TXT"
    earlier = speakers.is_file() and speakers.read_text(encoding="utf-8", errors="replace").startswith(SPEAKERS_HEADER)
    if not (earlier or (out_dir.is_dir() and not any(out_dir.iterdir()))):
        raise ValueError(f"{out_dir}: exists and is not a synthesized set: choose a new or empty folder")


def _install(tmp: Path, out_dir: Path) -> None:
    """Rename the finished set ``tmp`` onto ``out_dir`` (whatever was there is removed afterwards)."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, old / "set")
    os.replace(tmp, out_dir)
    shutil.rmtree(old)


def synthesize_set(
    out_dir: Path, count: int = 24, seed: int = 0, *, progress: bool = True, replace: bool = False
) -> Path:
    """Write ``count`` synthesized utterances in LibriSpeech layout under ``out_dir``.

    The set is written into a temporary folder beside ``out_dir`` and renamed when complete, so an interrupted
    run leaves nothing; it replaces an empty folder or an earlier synthesized set (anything with ``replace``).
    Same ``count`` and ``seed`` give the same files.  Returns ``out_dir``.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    check_tools()
    final = Path(out_dir)
    _check_target(final, replace)
    final.parent.mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        _write_set(out_dir, count, seed, progress)
        _install(out_dir, final)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return final


def _write_set(out_dir: Path, count: int, seed: int, progress: bool) -> None:
    pairs = _assign(count, seed)

    transcripts: Dict[Voice, List[str]] = {}
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a declared dependency; degrade quietly anyway
        bar = pairs
    else:
        bar = tqdm(pairs, desc="synthesizing", unit="utt", disable=not progress)
    for voice, sentence in bar:
        lines = transcripts.setdefault(voice, [])
        utt_id = f"{voice.speaker}-{voice.chapter}-{len(lines):04d}"
        chapter_dir = out_dir / str(voice.speaker) / str(voice.chapter)
        synthesize(sentence, voice, chapter_dir / f"{utt_id}.flac")
        lines.append(f"{utt_id} {normalize_transcript(sentence)}")

    for voice, lines in transcripts.items():
        trans = out_dir / str(voice.speaker) / str(voice.chapter) / f"{voice.speaker}-{voice.chapter}.trans.txt"
        trans.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")

    speakers = [
        SPEAKERS_HEADER,
        f"; count={count} seed={seed}",
        ";ID    |SEX| SUBSET    | VOICE",
    ]
    for voice in sorted(transcripts, key=lambda v: v.speaker):
        speakers.append(f"{voice.speaker} | {voice.sex} | synthetic | {voice.key}")
    (out_dir / "SPEAKERS.TXT").write_text("\n".join(speakers) + "\n", encoding="utf-8")


def synthesize_long(path, seconds: float, *, voice="flite:slt", seed: int = 0) -> Path:
    """Write a benchmark clip of exactly ``seconds`` seconds: whole sentences from one voice,
    separated by short pauses, chosen (in a seeded order) so that they fit, then padded with
    trailing silence.  The reference transcript goes next to it as ``<stem>.txt``.

    Keep ``seconds`` <= 30 for a clip that fits one Whisper window.  Returns the FLAC path.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    v = _resolve_voice(voice)
    out = Path(path)
    total = int(round(seconds * SAMPLE_RATE))
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)

    order = list(SENTENCES)
    random.Random(seed).shuffle(order)
    pieces: List[np.ndarray] = []
    words: List[str] = []
    used = 0
    for sentence in order:
        if total - used < SAMPLE_RATE:  # less than 1 s left: no sentence will fit
            break
        audio = _render(sentence, v)
        need = audio.shape[0] + (gap.shape[0] if pieces else 0)
        if used + need > total:
            continue
        if pieces:
            pieces.append(gap)
        pieces.append(audio)
        words.append(normalize_transcript(sentence))
        used += need
    if not pieces:
        raise ValueError(f"no sentence is short enough for a {seconds} s clip with voice {v.key}")
    pieces.append(np.zeros(total - used, dtype=np.float32))
    _write_flac(out, np.concatenate(pieces))
    out.with_suffix(".txt").write_text(" ".join(words) + "\n", encoding="utf-8")
    return out


@cli.entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = cli.Parser(
        prog="python -m model.synth_speech",
        description=(
            "Synthesize a LibriSpeech-layout speech set with flite and espeak-ng voices "
            f"(needs `{INSTALL_HINT}`). Voices: {', '.join(v.key for v in VOICES)}."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (or output .flac file with --say)")
    parser.add_argument("--count", type=cli.positive_int, default=24, help="number of utterances (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="seed for sentence/voice assignment (default 0)")
    parser.add_argument(
        "--bench",
        type=cli.positive_float,
        nargs="*",
        metavar="SECONDS",
        help="also write benchmark clips DIR/bench_<S>s.flac (+ .txt) of these durations, e.g. --bench 5 30",
    )
    parser.add_argument("--say", metavar="TEXT", help="speak just TEXT into the file --out (transcript to <stem>.txt)")
    parser.add_argument("--voice", default="flite:slt", help="voice for --say and --bench (default flite:slt)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)

    try:
        if args.say is not None:
            out = synthesize(args.say, args.voice, args.out)
            out.with_suffix(".txt").write_text(normalize_transcript(args.say) + "\n", encoding="utf-8")
            print(out)
            return 0
        synthesize_set(args.out, count=args.count, seed=args.seed, progress=not args.no_progress)
        for s in args.bench or []:
            synthesize_long(args.out / f"bench_{s:g}s.flac", s, voice=args.voice, seed=args.seed)
    except (TTSUnavailableError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
