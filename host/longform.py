"""Recordings of any length: windows of at most 30 s cut at pauses, a no-speech check per window, text joined.

Why cuts at pauses (an energy pass) rather than openai-whisper's timestamp seeking: the windows tile the recording
end to end with no overlap, so no stretch of audio is decoded twice (no duplicated words at a seam, by
construction) and none is skipped; a word is lost at a seam only if a cut falls inside it, and the cut is placed
in the middle of a pause (the latest pause of at least ``MIN_PAUSE_SECONDS`` in the last 20 s of the window).
Seeking instead re-decodes from the last timestamp the model emitted: it needs timestamp decoding (a different
decoding mode from the one every WER of this project was measured in, plus Whisper's timestamp rules) and
tiny.en's timestamps drift, which is where openai-whisper's repeated or lost words at seams come from (it
patches them with temperature fallback and compression-ratio checks on every window). Each window is decoded alone,
without the previous window's text as a prompt.

Loops: a window whose text loops (gzip compression ratio above 2.4, openai-whisper's rule, or a phrase said over
and over, :data:`REPEATS`) is decoded again, with the full 30-s window if it was trimmed, then by sampling at
openai-whisper's fallback temperatures; only a window that loops pays for the extra decodes, which the board
model charges (``Window.runs``, ``Window.samples``).

No-speech: a window whose loudest 200 ms is below ``ENERGY_GATE_DBFS`` is skipped without running the model
(tiny.en turns digital silence into "you" with a confident average log-probability of -0.37, which openai-whisper's
rule keeps); otherwise the window is decoded and skipped when openai-whisper's rule says so (``transcribe()``
defaults: ``no_speech_threshold=0.6``, ``logprob_threshold=-1.0``): the no-speech token's probability at the
first step above 0.6 and the average log-probability not above -1.

Memory: one window of audio (``host.audio.AudioReader`` decodes only the span asked for).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from time import perf_counter
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from host.audio import SAMPLE_RATE, AudioReader, load_audio
from host.whisper import Transcript, WhisperRuntime

WINDOW_SECONDS = 30.0
"""Whisper's window: the longest stretch decoded at once."""
FRAME = 320
"""Samples per energy frame (20 ms, one encoder position)."""
MIN_WINDOW_SECONDS = 10.0
"""A window is cut no earlier than this: the cut is looked for in the last 20 s of a full window."""
MIN_PAUSE_SECONDS = 0.3
"""A quiet run at least this long is a pause between words (stop closures inside words are under 0.15 s)."""
PAUSE_FRACTION = 0.25
"""A frame is quiet below ``floor + PAUSE_FRACTION * (loudest - floor)`` dB (10th-percentile frame level, loudest
200 ms; per window, so the threshold follows the recording's noise floor and level)."""
ENERGY_GATE_DBFS = -55.0
"""A window whose loudest 200 ms is below this is skipped. The loudest 200 ms of the 392 real recordings in
``shared/speech`` lie between -34 and -12 dBFS (median -17), so the gate sits 21 dB under the quietest of them."""
NO_SPEECH_THRESHOLD = 0.6
"""openai-whisper ``transcribe(no_speech_threshold=0.6)``."""
LOGPROB_THRESHOLD = -1.0
"""openai-whisper ``transcribe(logprob_threshold=-1.0)``: a confident decode is kept whatever the no-speech prob."""
# openai-whisper's transcribe(): a text whose gzip compression ratio exceeds 2.4 is a decoding loop. A trimmed
# window that loops is decoded again with the full 30-s window; if that loops too, the decoder samples at each of
# openai-whisper's fallback temperatures in turn (``transcribe(temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0))``, one
# sample each, as its ``best_of=None``) on the same encoder output, and the first text that does not loop is kept.
COMPRESSION_RATIO_THRESHOLD = 2.4
REPEATS = ((3, 3),)
"""A text loops too when one phrase of at least ``n`` words comes ``copies`` times in a row, for any ``(n, copies)``.
The gzip ratio misses a short utterance decoded over again ("oh no i'm quite sure he didn't" x 3 compresses to
2.23). Three copies of 3+ words: in 1,270 transcripts of this project's evaluation runs (dense and pruned,
LibriSpeech and the mixed set) it matched 8, each a loop with a WER of at least 100 %."""
RETRY_REPEATS = REPEATS + ((6, 2),)
"""What sends a trimmed window back to the full window: also two copies of 6+ words, the loops distilled packages
made (a sentence decoded twice, 100-166 % WER). Among 1,649 stored transcripts it matches those three and one
6-word phrase said twice inside otherwise right text (13 % WER); no reference of shared/speech says a phrase of 4+
words twice in a row. It does not start the sampling fallback: on that utterance the full window said the phrase
twice again, so did the samples at 0.2-0.8, and the first that did not, at 1.0, was noise (107 % WER)."""
SHORT_SECONDS = 4.0
SHORT_WORDS_PER_SECOND = 1.0
"""What else sends a trimmed window back to the full window: a text of fewer than 1 word per second of a window of
4 s or more. A pruned package's trimmed encoder can end the text early: "chapter thirty" for 15 s and 27 words
(19-227-0000 of data/librispeech-train3, three 8x8 packages at 25-30 %), which the full window transcribes with 2
errors. Among 13,718 stored transcripts of this project's evaluation runs (dense and pruned; the halves, train3, the
mixed set) 6 windows of 4+ s read under 1 word per second, each such a stop (1 to 12 words for 15-16 s of read
speech); the 1st percentile of all is 1.7 words per second. A window the model finds silent (no-speech probability
over ``NO_SPEECH_THRESHOLD``) is not retried, and the full window's text replaces the trimmed one only if it has
more words and the full window does not find it silent: the retry can add words, never drop the window (one with
long pauses costs one more decode and keeps what it had)."""
FALLBACK_TEMPERATURES = (0.2, 0.4, 0.6, 0.8, 1.0)
"""Sampling temperatures after greedy decoding loops. Unlike openai-whisper, a low average log-probability alone
does not trigger them: on hard speech that is tiny.en's best guess (greedy), and a sample is only a noisier one."""
SAMPLING_SEED = 0
"""Seed of each window's own sampler: a window's text does not depend on the windows before it, and a rerun (or
the board, whose kernel computes the same logits) draws the same tokens."""
# The encoder window of the demo and model.evaluate (``--window``). Trimmed is the default because on the 26 genuine
# LibriSpeech utterances of shared/speech the dense int8 model scores 9.83 % WER with it (bucketed windows and the
# loop fallback) against 9.05 % with the full window, within the 1.4-point budget, at a fraction of the work.
WINDOWS = ("trimmed", "full")
DEFAULT_WINDOW = "trimmed"
WINDOW_HELP = (
    "encoder window: 'trimmed' (default) runs the encoder on each window's audio + 1 s rounded up to 3, 6, 10, 15, "
    "20 or 30 s, and decodes a window again with the full window if its text loops (WER of both: docs/pruning.md); "
    "a text that loops with the full window is sampled again at rising temperatures (openai-whisper's fallback); "
    "'full' always runs the whole 30-s window (as openai-whisper)"
)


def window_name(trim: bool) -> str:
    """The encoder window in words, for reports."""
    return "trimmed to each window's audio (+1 s, bucketed; full-window fallback on loops)" if trim else "full 30 s"


def frame_power(audio: np.ndarray) -> np.ndarray:
    """Mean square of each whole 20-ms frame of ``audio`` (a shorter tail is left out)."""
    n = len(audio) // FRAME
    frames = audio[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    return (frames**2).mean(axis=1)


def dbfs(power: np.ndarray) -> np.ndarray:
    """Mean square -> dB relative to a full-scale square wave (1e-12 floor: -120 dBFS)."""
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def loudest_dbfs(power: np.ndarray) -> float:
    """Level of the loudest 200 ms (10 frames; the whole audio if shorter), dBFS."""
    width = min(10, len(power))
    if width == 0:
        return float(dbfs(np.zeros(1))[0])
    return float(dbfs(np.convolve(power, np.ones(width) / width, mode="valid")).max())


def choose_cut(power: np.ndarray, first: int) -> int:
    """Frame index at which to end a window whose frame powers are ``power``, at or after frame ``first``.

    The middle of the latest pause of at least ``MIN_PAUSE_SECONDS`` (the window's end if that pause reaches
    it); failing that, the middle of the longest quiet run; failing that, the quietest frame."""
    n = len(power)
    level = dbfs(power)
    floor = float(np.percentile(level, 10))
    quiet = level < floor + PAUSE_FRACTION * (loudest_dbfs(power) - floor)
    quiet[:first] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
    min_frames = round(MIN_PAUSE_SECONDS * SAMPLE_RATE / FRAME)
    pauses = [r for r in runs if r[1] - r[0] >= min_frames] or sorted(runs, key=lambda r: r[1] - r[0])[-1:]
    if not pauses:
        return first + int(np.argmin(level[first:]))
    a, b = pauses[-1]
    return n if b == n else (a + b) // 2


def spans(n_samples: int, read: Callable[[int, int], np.ndarray]) -> Iterator[tuple]:
    """``(start, stop, samples)`` of consecutive windows covering ``[0, n_samples)`` exactly, each at most
    ``WINDOW_SECONDS``, cut by :func:`choose_cut`; ``read(start, stop)`` gives the samples of a span."""
    width = int(WINDOW_SECONDS * SAMPLE_RATE)
    first = int(MIN_WINDOW_SECONDS * SAMPLE_RATE) // FRAME
    start = 0
    while start < n_samples:
        audio = read(start, start + width)
        if start + width >= n_samples:
            yield start, n_samples, audio
            return
        cut = choose_cut(frame_power(audio), first) * FRAME
        yield start, start + cut, audio[:cut]
        start += cut


def windows_of(audio: np.ndarray) -> List[np.ndarray]:
    """16-kHz ``audio`` of any length as consecutive windows of at most 30 s, cut in pauses (:func:`spans`)."""
    return [a for _, _, a in spans(len(audio), lambda start, stop: audio[start:stop])]


def load_windows(path) -> List[np.ndarray]:
    """An audio file of any length as windows of at most 30 s (for calibration and distillation audio)."""
    return windows_of(load_audio(path, max_seconds=None))


@dataclass
class Window:
    """One window of a recording: where it is, what was said, whether and why it was skipped, wall times."""

    start_s: float
    end_s: float
    loudest_dbfs: float
    text: str = ""
    skipped: Optional[str] = None
    discarded_text: str = ""  # what the model said in a window skipped by the no-speech rule
    no_speech_prob: Optional[float] = None
    avg_logprob: Optional[float] = None
    encoder_positions: int = 0  # of the run whose text is kept
    tokens: int = 0
    runs: List[Tuple[int, int]] = field(default_factory=list)  # (encoder positions, tokens) of every model run
    samples: List[Tuple[float, int]] = field(default_factory=list)  # (temperature, tokens) of decoder-only runs
    fallback: Optional[str] = None  # why the window was decoded again (full window, sampling)
    wall_s: Dict[str, float] = field(default_factory=dict)  # features, encoder, decoder (this machine)


def compression_ratio(text: str) -> float:
    """``len(text) / len(zlib(text))`` in UTF-8 bytes, as openai-whisper's ``compression_ratio``."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeated_phrase(text: str, repeats: Sequence[Tuple[int, int]] = REPEATS) -> Optional[Tuple[str, int]]:
    """The first phrase (and its copies) that ``text`` says over and over by one of the ``repeats`` rules (words
    compared in lower case, punctuation ignored), or None."""
    words = re.findall(r"[\w']+", text.lower())
    for size, copies in repeats:
        for n in range(size, len(words) // copies + 1):
            for i in range(len(words) - copies * n + 1):
                if all(words[i : i + n] == words[i + k * n : i + (k + 1) * n] for k in range(1, copies)):
                    return " ".join(words[i : i + n]), copies
    return None


def loop_reason(text: str, repeats: Sequence[Tuple[int, int]] = REPEATS) -> Optional[str]:
    """Why ``text`` is a decoding loop (openai-whisper's compression ratio, or a phrase said over and over by one of
    the ``repeats`` rules), or None."""
    ratio = compression_ratio(text)
    if ratio > COMPRESSION_RATIO_THRESHOLD:
        return f"compression ratio {ratio:.1f} > {COMPRESSION_RATIO_THRESHOLD}"
    found = repeated_phrase(text, repeats)
    return f'"{found[0]}" {found[1]} times in a row' if found else None


def early_stop_reason(text: str, seconds: float) -> Optional[str]:
    """Why ``text`` is too short for ``seconds`` of audio (:data:`SHORT_WORDS_PER_SECOND`), or None."""
    words = len(text.split())
    if seconds >= SHORT_SECONDS and words < SHORT_WORDS_PER_SECOND * seconds:
        plural = "" if words == 1 else "s"
        return f"{words} word{plural} for {seconds:.1f} s, under {SHORT_WORDS_PER_SECOND:g} per second"
    return None


def may_be_silence(tr: Transcript) -> bool:
    """Whether the decoder's no-speech probability of ``tr`` is over ``NO_SPEECH_THRESHOLD`` (openai-whisper's
    test; None, a decoder that does not report it, is speech)."""
    return tr.no_speech_prob is not None and tr.no_speech_prob > NO_SPEECH_THRESHOLD


def _sample_until_no_loop(runtime: WhisperRuntime, enc: np.ndarray, greedy: Transcript, win: Window) -> Transcript:
    """The full window's ``greedy`` text looped: sample at each of ``FALLBACK_TEMPERATURES`` until a text does
    not loop (recorded in ``win.samples`` and ``win.fallback``); if every one loops, ``greedy`` is kept."""
    rng = np.random.default_rng(SAMPLING_SEED)
    before = f"{win.fallback}; " if win.fallback else ""
    for temperature in FALLBACK_TEMPERATURES:
        tr = runtime.decode(enc, temperature=temperature, rng=rng)
        win.samples.append((temperature, len(tr.tokens)))
        if loop_reason(tr.text) is None:
            win.fallback = f"{before}greedy text looped: sampled at temperature {temperature:g}"
            return tr
    win.fallback = f"{before}greedy text looped and so did every sample: greedy text kept"
    return greedy


def transcribe_window(
    runtime: WhisperRuntime,
    audio: np.ndarray,
    start_s: float,
    trim: bool,
    on_stage: Optional[Callable[[str], None]] = None,
) -> Window:
    """Energy gate, then features -> encoder -> decoder and the no-speech rule, on one window of 16-kHz audio;
    ``trim``: the encoder runs on the window's length (+1 s) instead of 30 s; ``on_stage(name)`` is called at the
    end of the ``features``, ``encoder`` and ``decoder`` stages."""
    win = Window(start_s, start_s + len(audio) / SAMPLE_RATE, loudest_dbfs(frame_power(audio)))
    if win.loudest_dbfs < ENERGY_GATE_DBFS:
        win.skipped = f"energy gate: loudest 200 ms at {win.loudest_dbfs:.1f} dBFS < {ENERGY_GATE_DBFS:g} dBFS"
        return win
    stage = on_stage or (lambda name: None)
    clock = [perf_counter()]

    def done(name: str) -> None:
        stage(name)
        now = perf_counter()
        win.wall_s[name] = win.wall_s.get(name, 0.0) + now - clock[0]  # a fallback runs a stage twice
        clock[0] = now

    mel = runtime.features(audio)
    done("features")
    win.encoder_positions = runtime.audio_ctx(len(audio)) if trim else runtime.cfg["n_audio_ctx"]
    enc = runtime.encode(mel, win.encoder_positions if trim else None)
    done("encoder")
    tr = runtime.decode(enc)
    done("decoder")
    win.runs.append((win.encoder_positions, len(tr.tokens)))
    trimmed = trim and win.encoder_positions < runtime.cfg["n_audio_ctx"]
    reason = loop_reason(tr.text, RETRY_REPEATS if trimmed else REPEATS)
    silent = may_be_silence(tr)  # few words are expected
    short = early_stop_reason(tr.text, len(audio) / SAMPLE_RATE) if trimmed and not (reason or silent) else None
    if trimmed and (reason or short):
        what = f"looped ({reason})" if reason else f"stopped early ({short})"
        win.fallback = f"trimmed window {what}: decoded again with the full window"
        kept_positions, kept_enc, kept = win.encoder_positions, enc, tr
        win.encoder_positions = runtime.cfg["n_audio_ctx"]
        enc = runtime.encode(mel, None)
        done("encoder")
        tr = runtime.decode(enc)
        done("decoder")
        win.runs.append((win.encoder_positions, len(tr.tokens)))
        more = len(tr.text.split()) > len(kept.text.split())
        if short and (not more or may_be_silence(tr)):
            # the full window says no more, or finds silence: the trimmed text stands
            win.encoder_positions, enc, tr = kept_positions, kept_enc, kept
            win.fallback += "; the full window added nothing, the trimmed text kept"
        reason = loop_reason(tr.text)
    # the no-speech probability is read at the first step, the same for every decode of this encoding; as in
    # openai-whisper, a window that may be silence is not sampled
    no_speech = may_be_silence(tr)
    if reason and not no_speech and win.encoder_positions == runtime.cfg["n_audio_ctx"]:
        tr = _sample_until_no_loop(runtime, enc, tr, win)
        done("decoder")
    win.no_speech_prob, win.avg_logprob, win.tokens = tr.no_speech_prob, tr.avg_logprob, len(tr.tokens)
    if no_speech and tr.avg_logprob <= LOGPROB_THRESHOLD:
        win.skipped = (
            f"no speech: no-speech probability {tr.no_speech_prob:.2f} > {NO_SPEECH_THRESHOLD} and average "
            f"log-probability {tr.avg_logprob:.2f} <= {LOGPROB_THRESHOLD}"
        )
        win.discarded_text = tr.text
    else:
        win.text = tr.text
    return win


def iter_windows(
    runtime: WhisperRuntime,
    reader: AudioReader,
    trim: bool = False,
    progress: bool = True,
    on_stage: Optional[Callable[[str], None]] = None,
) -> Iterator[Window]:
    """Transcribe ``reader``'s recording window by window (see :func:`transcribe_window`), with a progress bar
    in seconds of audio when it is longer than one window."""
    with tqdm(
        total=round(reader.seconds, 2),
        unit="s",
        desc=f"transcribing {reader.name}",
        disable=not progress or reader.seconds <= WINDOW_SECONDS,
        leave=False,
    ) as bar:
        for start, stop, audio in spans(reader.n_samples, reader.read):
            yield transcribe_window(runtime, audio, start / SAMPLE_RATE, trim, on_stage)
            bar.update(round((stop - start) / SAMPLE_RATE, 2))


def join(windows: List[Window]) -> str:
    """The transcript of consecutive windows: their texts, space-separated (skipped windows add nothing)."""
    return " ".join(w.text.strip() for w in windows if w.text.strip())
