"""Audio input for the host runtime: load, downmix, resample to 16 kHz, validate.

Only numpy, scipy and soundfile are used here (this module runs on the board).

Everything that leaves this module is a 1-D float32 array of 16 kHz mono samples in [-1, 1],
which is what ``host.features`` (Whisper log-mel) expects.  Bad input raises a subclass of
:class:`AudioError` (itself a ``ValueError``) whose message names the file and the fault.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

__all__ = [
    "SAMPLE_RATE",
    "MIN_SECONDS",
    "WHISPER_WINDOW_SECONDS",
    "DEMO_CLIP",
    "DEMO_TRANSCRIPT",
    "AudioError",
    "AudioFileNotFoundError",
    "AudioDecodeError",
    "AudioTooShortError",
    "AudioEmptyError",
    "AudioNonFiniteError",
    "AudioTooLongError",
    "load_audio",
    "prepare_audio",
    "split_chunks",
    "AudioReader",
    "demo_reference",
]

SAMPLE_RATE = 16_000
"""Whisper's input rate (Hz)."""

MIN_SECONDS = 0.1
"""Shorter input is rejected: it cannot hold a word, and usually means a truncated file."""

WHISPER_WINDOW_SECONDS = 30.0
"""Whisper encodes one 30-s window; longer audio must be chunked (see :func:`split_chunks`)."""

_ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_CLIP: Path = _ASSETS / "demo.flac"
"""A short synthesized sentence bundled with the package (see ``host/assets/README.md``)."""
# the default calibration audio of pruned packages: 10 real LibriSpeech utterances (CC BY 4.0, see its README.md)
CALIB_DIR: Path = _ASSETS / "calib"
# with it, the default statistics audio that chooses the tiles: 24 whole read-English clips (LibriVox and LJ Speech
# public domain, LibriSpeech CC BY 4.0, CMU ARCTIC; each file's licence in its README.md)
STATS_DIR: Path = _ASSETS / "stats"
DEFAULT_TILE_AUDIO: Tuple[Path, ...] = (CALIB_DIR, STATS_DIR)
"""What chooses and compensates a pruned package's tiles without ``--calib`` or ``--stats-audio`` (session 38): the
calibration set with the statistics set (``model.pipeline.ExportConfig.tile_audio``; the demo's cache names)."""
DEMO_TRANSCRIPT: Path = _ASSETS / "demo.txt"
"""Reference transcript of :data:`DEMO_CLIP` (LibriSpeech convention)."""

PathLike = Union[str, "os.PathLike[str]"]


class AudioError(ValueError):
    """Base class of every input-audio fault raised by this module."""


class AudioFileNotFoundError(AudioError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class AudioDecodeError(AudioError):
    """The file exists but libsndfile cannot decode it (corrupt, truncated or unsupported)."""


class AudioTooShortError(AudioError):
    """Fewer samples than :data:`MIN_SECONDS` of audio."""


class AudioEmptyError(AudioTooShortError):
    """No samples at all (0-byte file, or a valid header with 0 frames)."""


class AudioNonFiniteError(AudioError):
    """The samples contain NaN or +/-Inf."""


class AudioTooLongError(AudioError):
    """Longer than ``max_seconds`` (by default Whisper's 30-s window)."""


def demo_reference() -> str:
    """Reference transcript of the bundled demo clip (uppercase, LibriSpeech convention)."""
    return DEMO_TRANSCRIPT.read_text(encoding="utf-8").strip()


def load_audio(path: PathLike, *, max_seconds: Optional[float] = WHISPER_WINDOW_SECONDS) -> np.ndarray:
    """Read an audio file as float32 mono 16 kHz samples in [-1, 1].

    Any format libsndfile reads (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1, ...) at any sample
    rate and channel count.  Integer PCM is scaled to [-1, 1) by soundfile; channels are averaged;
    the rate is converted with :func:`scipy.signal.resample_poly` using the exact rational ratio.

    ``max_seconds`` bounds the input duration (default: Whisper's 30-s window); pass ``None`` to
    accept any length and cut it yourself with :func:`split_chunks`.

    Raises a subclass of :class:`AudioError`: :class:`AudioFileNotFoundError`,
    :class:`AudioDecodeError`, :class:`AudioEmptyError`, :class:`AudioTooShortError`,
    :class:`AudioNonFiniteError` or :class:`AudioTooLongError`.  All-zero (silent) audio is valid.
    """
    p = Path(path)
    name = str(p)
    if not p.exists():
        raise AudioFileNotFoundError(f"audio file not found: {name}")
    if not p.is_file():
        raise AudioFileNotFoundError(f"not a regular file (is it a directory?): {name}")
    if p.stat().st_size == 0:
        raise AudioEmptyError(f"audio file is empty (0 bytes): {name}")

    try:
        with sf.SoundFile(name) as f:
            sample_rate = int(f.samplerate)
            if max_seconds is not None and f.frames > 0 and f.frames / sample_rate > max_seconds:
                # Refuse before decoding the whole file: a long recording can be large.
                raise AudioTooLongError(_too_long_message(name, f.frames / sample_rate, max_seconds))
            samples = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.SoundFileError, RuntimeError, TypeError, EOFError) as exc:
        raise AudioDecodeError(f"cannot decode audio file {name}: {exc}") from exc

    return prepare_audio(samples, sample_rate, max_seconds=max_seconds, source=name)


def prepare_audio(
    samples: np.ndarray,
    sample_rate: int,
    *,
    max_seconds: Optional[float] = WHISPER_WINDOW_SECONDS,
    source: str = "<in-memory audio>",
) -> np.ndarray:
    """Validate and convert in-memory audio to float32 mono 16 kHz in [-1, 1].

    ``samples`` is 1-D (mono) or 2-D ``(frames, channels)`` as soundfile returns it; an array
    that is plainly channels-first (at most 16 rows and more columns than rows) is transposed.
    Float input is taken as already scaled to [-1, 1]; integer input is scaled by its type's
    full range (int16 / 32768, int32 / 2**31, uint8 centred on 128).  The result is clipped to
    [-1, 1] (resampling can overshoot slightly at full scale).  ``source`` names the audio in
    error messages.  Same checks and errors as :func:`load_audio`.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{source}: sample rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)

    x = np.asarray(samples)
    if x.ndim == 0 or x.ndim > 2:
        raise AudioError(f"{source}: expected 1-D or 2-D (frames, channels) samples, got shape {x.shape}")
    if x.dtype.kind not in "fiu":
        raise AudioError(f"{source}: unsupported sample dtype {x.dtype}")

    x = _to_float32(x)
    if x.ndim == 2:
        if x.shape[0] <= 16 < x.shape[1]:
            x = x.T  # (channels, frames) -> (frames, channels)
        if x.shape[1] == 0:
            raise AudioEmptyError(f"{source}: audio has no channels (shape {x.shape})")

    n_frames = x.shape[0]
    if n_frames == 0:
        raise AudioEmptyError(f"{source}: audio is empty (0 samples)")
    duration = n_frames / sample_rate
    if duration < MIN_SECONDS:
        raise AudioTooShortError(
            f"{source}: audio is too short ({duration:.3f} s, {n_frames} samples at {sample_rate} Hz);"
            f" at least {MIN_SECONDS} s is needed"
        )
    if max_seconds is not None and duration > max_seconds:
        raise AudioTooLongError(_too_long_message(source, duration, max_seconds))

    finite = np.isfinite(x)
    if not finite.all():
        n_nan = int(np.isnan(x).sum())
        n_inf = int(x.size - finite.sum()) - n_nan
        raise AudioNonFiniteError(f"{source}: audio contains {n_nan} NaN and {n_inf} Inf samples")

    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]

    if sample_rate != SAMPLE_RATE:
        ratio = Fraction(SAMPLE_RATE, sample_rate)
        x = resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32, copy=False)

    x = np.clip(x, -1.0, 1.0)
    return np.ascontiguousarray(x, dtype=np.float32)


class AudioReader:
    """A recording of any length read piece by piece: ``read(start, stop)`` gives 16-kHz samples
    ``[start, stop)`` as float32 mono in [-1, 1], decoding only that span (plus a resampling margin), so
    memory stays bounded by the span asked for, not the file.

    Same conversion as :func:`load_audio` (channels averaged, exact-ratio :func:`scipy.signal.resample_poly`,
    clipped): a span is resampled with ``RESAMPLE_MARGIN`` source samples of context on each side and cut from
    an offset that is a whole number of output samples, which reproduces the whole-file result up to float
    rounding. Opening raises the errors of :func:`load_audio` (not found, empty, undecodable, too short);
    ``read`` raises :class:`AudioNonFiniteError` naming the file and the time of the fault. Use as a context
    manager or call :meth:`close`.
    """

    RESAMPLE_MARGIN = 2048
    """Source samples of context on each side of a span (resample_poly's filter reaches 10 * max(up, down)
    upsampled samples, about 30 source samples for 44.1 -> 16 kHz)."""

    def __init__(self, path: PathLike):
        p = Path(path)
        self.name = str(p)
        if not p.exists():
            raise AudioFileNotFoundError(f"audio file not found: {self.name}")
        if not p.is_file():
            raise AudioFileNotFoundError(f"not a regular file (is it a directory?): {self.name}")
        if p.stat().st_size == 0:
            raise AudioEmptyError(f"audio file is empty (0 bytes): {self.name}")
        try:
            self._f = sf.SoundFile(self.name)
        except (sf.SoundFileError, RuntimeError, TypeError, EOFError) as exc:
            raise AudioDecodeError(f"cannot decode audio file {self.name}: {exc}") from exc
        self.source_rate = int(self._f.samplerate)
        ratio = Fraction(SAMPLE_RATE, self.source_rate)
        self._up, self._down = ratio.numerator, ratio.denominator
        frames = int(self._f.frames)
        if frames <= 0:
            self.close()
            raise AudioEmptyError(f"{self.name}: audio is empty (0 samples)")
        if frames / self.source_rate < MIN_SECONDS:
            self.close()
            raise AudioTooShortError(
                f"{self.name}: audio is too short ({frames / self.source_rate:.3f} s, {frames} samples at "
                f"{self.source_rate} Hz); at least {MIN_SECONDS} s is needed"
            )
        self._frames = frames
        self.n_samples = -(-frames * self._up // self._down)
        """Length in 16-kHz samples (as :func:`load_audio` would return)."""

    @property
    def seconds(self) -> float:
        return self.n_samples / SAMPLE_RATE

    def read(self, start: int, stop: int) -> np.ndarray:
        """16-kHz samples ``[start, stop)`` (clamped to the recording)."""
        start, stop = max(0, start), min(stop, self.n_samples)
        if stop <= start:
            return np.zeros(0, np.float32)
        up, down = self._up, self._down
        # first source sample: a multiple of `down` (so it maps to a whole output sample), margin before start
        src0 = max(0, (start * down // up - self.RESAMPLE_MARGIN) // down * down)
        src1 = min(self._frames, -(-stop * down // up) + self.RESAMPLE_MARGIN)
        try:
            self._f.seek(src0)
            x = self._f.read(src1 - src0, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as exc:
            where = f"{self.name} at {start / SAMPLE_RATE:.2f} s"
            raise AudioDecodeError(f"cannot decode audio file {where}: {exc}") from exc
        if not np.isfinite(x).all():
            raise AudioNonFiniteError(
                f"{self.name}: audio contains NaN or Inf samples between {src0 / self.source_rate:.2f} s and "
                f"{src1 / self.source_rate:.2f} s"
            )
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        if (up, down) != (1, 1):
            x = resample_poly(x, up, down).astype(np.float32, copy=False)
        offset = start - src0 * up // down
        return np.ascontiguousarray(np.clip(x[offset : offset + stop - start], -1.0, 1.0), dtype=np.float32)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_chunks(samples: np.ndarray, seconds: float = WHISPER_WINDOW_SECONDS) -> List[np.ndarray]:
    """Cut 16 kHz mono ``samples`` into consecutive chunks of ``seconds`` (the last may be shorter).

    The chunks are views into ``samples``; they cover it exactly, in order.  Empty input gives [].
    """
    if seconds <= 0:
        raise ValueError(f"chunk length must be positive, got {seconds} s")
    x = np.asarray(samples)
    if x.ndim != 1:
        raise AudioError(f"split_chunks expects 1-D mono samples, got shape {x.shape}")
    step = int(round(seconds * SAMPLE_RATE))
    if step <= 0:
        raise ValueError(f"chunk length {seconds} s is shorter than one sample at {SAMPLE_RATE} Hz")
    return [x[i : i + step] for i in range(0, x.shape[0], step)]


def _too_long_message(source: str, duration: float, max_seconds: float) -> str:
    return (
        f"{source}: audio is {duration:.2f} s long, more than max_seconds={max_seconds:g} s"
        f" (Whisper encodes one 30-s window); pass max_seconds=None to load it anyway"
        f" and cut it with split_chunks()"
    )


def _to_float32(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "f":
        return x.astype(np.float32, copy=False)
    if x.dtype.kind == "u":
        bits = 8 * x.dtype.itemsize
        mid = 2.0 ** (bits - 1)
        return ((x.astype(np.float64) - mid) / mid).astype(np.float32)
    bits = 8 * x.dtype.itemsize
    return (x.astype(np.float64) / 2.0 ** (bits - 1)).astype(np.float32)
