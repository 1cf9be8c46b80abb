"""Per-layer pruning sensitivity: how much each layer's output and the model's output suffer at each rate.

Two measurements, combined by the allocator (``model.prune.allocate_rates``):
- ``layer_errors``: the relative output error of a layer pruned (and compensated) at each rate, from the
  calibration Gram matrix (cheap, no forward pass);
- ``end_to_end_gains``: how strongly one layer's output error reaches the model's output: each layer alone is
  pruned at a probe rate and the teacher-forced next-token distributions are compared with the dense model's
  (mean KL divergence over the positions of a few calibration clips, decoded by the dense model).
The cost of rate ``r`` in layer ``l`` is ``gain_l * layer_error_l(r)``: early layers whose small errors are
amplified downstream are pruned less than their local error alone would suggest.

``heldout``: both are measured on calibration windows the compensation did not see. A layer whose inputs span
more dimensions than the calibration set has rows (the decoder's 1536-wide ``mlp.2`` sees ~40 tokens per clip)
can be compensated exactly on those rows, so its in-sample error is near zero whatever is pruned and the allocator
takes it for free. Held out, each layer error is the mean of two fits (tiles and compensation on one fold of
windows, ``CalibStats.folds``, error on the other), and the probe prunes on the even windows and is decoded on odd
ones.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from host.whisper import DenseGemm, WhisperRuntime
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats, dense_windows, teacher_forced_pass
from model.prune import apply_mask, compensate, output_error, prune_layer, tile_keep

RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
PROBE_RATE = 0.3
PROBE_CLIPS = 3


def sampled_error(
    w: np.ndarray,
    gram: np.ndarray,
    tile: Tuple[int, int],
    rate: float,
    method: str,
    damp: float,
    max_blocks: int = 12,
    seed: int = 0,
    eval_gram: Optional[np.ndarray] = None,
) -> float:
    """Relative output error of pruning ``w`` at ``rate``, compensating a sample of column blocks (fast): tiles
    and compensation fitted on ``gram``, the error measured on ``eval_gram`` (default: ``gram``)."""
    keep = tile_keep(w, tile, rate, method, gram, damp)
    nb = keep.shape[1]
    pick = np.sort(np.random.default_rng(seed).choice(nb, size=min(nb, max_blocks), replace=False))
    cols = np.concatenate([np.arange(j * tile[1], min((j + 1) * tile[1], w.shape[1])) for j in pick])
    sub_w, sub_keep = w[:, cols], keep[:, pick]
    new = compensate(sub_w, sub_keep, gram, tile, damp) if method.endswith("-ls") else apply_mask(sub_w, sub_keep, tile)
    return output_error(sub_w, new, gram if eval_gram is None else eval_gram)


def layer_errors(
    ops: Dict[str, tuple],
    stats: CalibStats,
    names: Sequence[str],
    tile: Tuple[int, int],
    method: str,
    damp: float,
    rates: Sequence[float] = RATES,
    heldout: bool = False,
) -> Dict[str, List[float]]:
    """``{layer: [relative output error at each rate]}`` on the calibration statistics (``heldout``: the mean of
    the two folds, each fitted on the other)."""
    out = {}
    for name in tqdm(names, desc="layer sensitivity", unit="layer"):
        w = ops[name][0]
        if heldout:
            a, b = stats.folds(name)
            fits = [(a, b), (b, a)]
        else:
            fits = [(stats.gram[name], None)]
        out[name] = [0.0] + [
            float(np.mean([sampled_error(w, fit, tile, r, method, damp, eval_gram=ev) for fit, ev in fits]))
            for r in rates[1:]
        ]
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    lp, lq = _log_softmax(p_logits.astype(np.float64)), _log_softmax(q_logits.astype(np.float64))
    return float((np.exp(lp) * (lp - lq)).sum(axis=-1).mean())


def end_to_end_gains(
    weights: WhisperWeights,
    stats: CalibStats,
    names: Sequence[str],
    tile: Tuple[int, int],
    method: str,
    damp: float,
    files: Sequence[Path],
    errors: Dict[str, List[float]],
    probe_rate: float = PROBE_RATE,
    heldout: bool = False,
) -> Dict[str, float]:
    """``{layer: KL at the model output / layer relative error}``, each layer pruned alone at ``probe_rate`` on
    the first calibration windows (``heldout``: pruned on the even windows, decoded on the first odd ones)."""
    gemm = DenseGemm(weights)
    runtime = WhisperRuntime(weights, gemm)
    windows = dense_windows(weights, files, desc="probe clips", progress=False, dense=gemm)  # dense until pruned
    picked = islice(windows, 1, None, 2) if heldout else windows
    clips = [
        (c.mel, c.dense_enc, c.tokens, teacher_forced_pass(runtime, c.dense_enc, c.tokens))
        for c in islice(picked, PROBE_CLIPS)
    ]
    idx = RATES.index(probe_rate)
    gains = {}
    for name in tqdm(names, desc="end-to-end sensitivity", unit="layer"):
        w, b = gemm.ops[name]
        fit = stats.folds(name)[0] if heldout and name in stats.gram else stats.gram.get(name)
        pruned = prune_layer(w, tile, probe_rate, method, fit, damp).weight
        gemm.ops[name] = (pruned, b)
        kl = 0.0
        for mel, enc, tokens, ref_logits in clips:
            enc_p = runtime.encode(mel) if name.startswith("encoder.") else enc
            kl += _kl(ref_logits, teacher_forced_pass(runtime, enc_p, tokens))
        gemm.ops[name] = (w, b)
        gains[name] = (kl / len(clips)) / max(errors[name][idx], 1e-12)
    return gains
