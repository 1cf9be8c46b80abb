"""Calibration statistics for pruning: per GEMM layer, the Gram matrix ``H = X^T X`` of its inputs.

Only real speech frames count: Whisper pads every clip to 30 s, and statistics dominated by padding frames
make the least-squares compensation worse. Encoder rows past the clip's length are dropped (conv1 works on
mel frames, every later encoder GEMM and the cross-attention K/V on encoder positions). The decoder runs
teacher-forced on the dense model's own greedy transcript (pseudo-labels), so no transcripts are needed.
Each window also counts towards one of two folds (even / odd windows, ``CalibStats.odd``), so that the sensitivity
analysis can measure a pruned layer on calibration rows its compensation did not see (``model.sensitivity``,
``--sensitivity held-out``). Statistics are cached on disk (``model.pipeline.step_cache``: keyed by the weights,
the audio files and the prunable-layer regex); the cache file is written atomically and checked when read (a
damaged one is recomputed).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from host.features import HOP_LENGTH, N_FRAMES
from host.longform import load_windows
from host.package import atomic_path
from host.whisper import DenseGemm, WhisperRuntime
from host.whisper_layers import valid_rows
from host.whisper_weights import WhisperWeights

PARTS = ("gram", "odd", "rows")  # the arrays of a cache file, each per layer
STORED_DTYPE = np.float32  # the Gram matrices in a cache file


@dataclass
class CalibStats:
    """Per layer: ``gram`` = sum of x x^T over calibration rows (float64), ``rows`` = how many rows, ``odd`` = the
    part of ``gram`` from odd-numbered windows (the other fold is ``gram - odd``)."""

    gram: Dict[str, np.ndarray] = field(default_factory=dict)
    rows: Dict[str, int] = field(default_factory=dict)
    odd: Dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, layer: str, x: np.ndarray, odd: bool = False) -> None:
        x64 = x.astype(np.float64)
        g = x64.T @ x64
        if layer not in self.gram:
            self.gram[layer], self.rows[layer], self.odd[layer] = np.zeros_like(g), 0, np.zeros_like(g)
        self.gram[layer] += g
        self.rows[layer] += x.shape[0]
        if odd:
            self.odd[layer] += g

    def folds(self, layer: str) -> tuple:
        """``(even, odd)``: the Gram matrices of the two folds of calibration windows."""
        return self.gram[layer] - self.odd[layer], self.odd[layer]

    def as_stored(self) -> CalibStats:
        """These statistics as a cache file holds them (Gram matrices rounded to ``STORED_DTYPE``, as :meth:`save`
        writes them): an export that computes them then prunes exactly as one that reads them back, so a package
        does not depend on whether the cache existed (before, the two differed in the least-squares weights)."""

        def stored(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
            return {k: v.astype(STORED_DTYPE).astype(np.float64) for k, v in arrays.items()}

        return CalibStats(stored(self.gram), dict(self.rows), stored(self.odd))

    def save(self, path: Path) -> None:
        """Write atomically (temporary file + rename)."""
        arrays = {f"gram/{k}": v.astype(STORED_DTYPE) for k, v in self.gram.items()}
        arrays.update({f"odd/{k}": v.astype(STORED_DTYPE) for k, v in self.odd.items()})
        arrays.update({f"rows/{k}": np.array(v) for k, v in self.rows.items()})
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: Path, layers: Sequence[str]) -> Optional[CalibStats]:
        """The statistics cached at ``path`` if they are whole (every layer with square finite Gram matrices of both
        folds and a positive row count); ``None`` if the file is damaged or incomplete (a cache from before the
        folds is incomplete: it is computed again)."""
        try:
            with np.load(path) as z:
                part = {p: {k[len(p) + 1 :]: z[k] for k in z.files if k.startswith(f"{p}/")} for p in PARTS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        gram = {k: v.astype(np.float64) for k, v in part["gram"].items()}
        odd = {k: v.astype(np.float64) for k, v in part["odd"].items()}
        rows = {k: int(v) for k, v in part["rows"].items()}
        whole = set(gram) == set(odd) == set(rows) == set(layers) and all(
            g.ndim == 2 and g.shape[0] == g.shape[1] and g.shape == odd[k].shape and rows[k] > 0
            for k, g in gram.items()
        )
        whole = whole and all(np.isfinite(g).all() and np.isfinite(odd[k]).all() for k, g in gram.items())
        return cls(gram, rows, odd) if whole else None


@dataclass
class Clip:
    """One calibration window: its features, real frames, the dense model's transcript and encoder output."""

    mel: np.ndarray
    frames: int  # mel frames of real audio
    tokens: List[int]  # the dense model's greedy transcript
    dense_enc: np.ndarray
    pruned_enc: Optional[np.ndarray] = None  # filled in by model.sequential


class _RecordingGemm:
    """Dense GEMMs that also accumulate the Gram matrix of each layer's valid input rows."""

    def __init__(self, weights: WhisperWeights, layers: Sequence[str], stats: CalibStats):
        self.inner = DenseGemm(weights)
        self.layers = set(layers)
        self.stats = stats
        self.valid_frames = 0
        self.odd = False  # whether the current window is in the odd fold

    def matmul(self, x: np.ndarray, layer: str) -> np.ndarray:
        if layer in self.layers:
            self.stats.add(layer, x[: valid_rows(layer, self.valid_frames)], self.odd)
        return self.inner.matmul(x, layer)


def teacher_forced_pass(runtime: WhisperRuntime, encoded: np.ndarray, tokens: List[int]) -> np.ndarray:
    """Run the decoder once over ``prompt + tokens`` (all positions at once); logits of every position."""
    cache = runtime.prefill(encoded)
    return runtime.step(runtime.tokenizer.initial_tokens() + tokens, 0, cache, all_positions=True)


def dense_windows(
    weights: WhisperWeights,
    files: Sequence[Path],
    recorder: Optional[_RecordingGemm] = None,
    desc: str = "calibration",
    progress: bool = True,
    dense: Optional[DenseGemm] = None,
) -> Iterator[Clip]:
    """Every 30-s window of the calibration ``files`` (recordings over 30 s are cut in pauses, ``host.longform``)
    with its real frames, dense encoder output and the dense model's greedy transcript, on the GEMMs ``dense``
    (default: the recorder's, else new ones). A ``recorder`` runs the encoder (it sees the encoder's inputs; its
    ``valid_frames`` and ``odd`` are set for the window first)."""
    dense = dense or (recorder.inner if recorder is not None else DenseGemm(weights))
    plain = WhisperRuntime(weights, dense)
    encoder = WhisperRuntime(weights, recorder) if recorder is not None else plain
    index = 0
    for f in tqdm(files, desc=desc, unit="clip", disable=not progress):
        for audio in load_windows(f):
            frames = min(N_FRAMES, -(-len(audio) // HOP_LENGTH))
            if recorder is not None:
                recorder.valid_frames, recorder.odd = frames, index % 2 == 1
            index += 1
            mel = plain.features(audio)
            encoded = encoder.encode(mel)
            yield Clip(mel, frames, plain.decode(encoded).tokens, encoded)


def collect_stats(
    weights: WhisperWeights,
    files: Sequence[Path],
    layers: Sequence[str],
    cache: Optional[Path] = None,
    progress: bool = True,
) -> CalibStats:
    """Gram matrices of every layer's inputs on the calibration audio (dense model, one pass per clip); read
    from the file ``cache`` when it holds them whole, else computed and written there."""
    cached = CalibStats.load(cache, layers) if cache is not None and cache.exists() else None
    if cached is not None:
        return cached
    stats = CalibStats()
    rec = _RecordingGemm(weights, layers, stats)
    runtime = WhisperRuntime(weights, rec)
    for clip in dense_windows(weights, files, rec, progress=progress):
        teacher_forced_pass(runtime, clip.dense_enc, clip.tokens)
    stats = stats.as_stored()
    if cache is not None:
        stats.save(cache)
    return stats
