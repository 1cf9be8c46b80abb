"""Per-layer pruning sensitivity: how much each layer's output and the model's output suffer at each rate.

Two measurements, combined by the allocator (``model.prune.allocate_rates``):
- ``layer_errors``: the relative output error of a layer pruned (and compensated) at each rate, from the
  calibration Gram matrix (cheap, no forward pass);
- ``end_to_end_gains``: how strongly one layer's output error reaches the model's output: each layer alone is
  pruned at a probe rate and the teacher-forced next-token distributions are compared with the dense model's
  (mean KL divergence over the positions of a few calibration clips, decoded by the dense model).
The cost of rate ``r`` in layer ``l`` is ``gain_l * layer_error_l(r)``: early layers whose small errors are
amplified downstream are pruned less than their local error alone would suggest.
``refine_rates`` (``--refine``) also probes each layer at the rate the allocation gives it and the next, and uses
the measured KL there; ``Probe(trimmed=True)`` (``--probe trimmed``) probes on the deployed encoder window. Both were
measured on the LibriSpeech halves and are not the default (docs/pruning.md).

``heldout``: both are measured on calibration windows the compensation did not see. A layer whose inputs span
more dimensions than the calibration set has rows (the decoder's 1536-wide ``mlp.2`` sees ~40 tokens per clip)
can be compensated exactly on those rows, so its in-sample error is near zero whatever is pruned and the allocator
takes it for free. Held out, each layer error is the mean of two fits (tiles and compensation on one fold of
windows, ``CalibStats.folds``, error on the other), and the probe prunes on the even windows and is decoded on odd
ones.
"""

from __future__ import annotations

from functools import cached_property
from itertools import islice
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from host.features import HOP_LENGTH
from host.whisper import DenseGemm, WhisperRuntime, trimmed_ctx
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats, dense_windows, teacher_forced_pass
from model.prune import allocate_rates, apply_mask, compensate, output_error, prune_layer, tile_keep

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


def mean_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """KL(p || q) of the next-token distributions, averaged over the positions (rows) of the logits."""
    lp, lq = _log_softmax(p_logits.astype(np.float64)), _log_softmax(q_logits.astype(np.float64))
    return float((np.exp(lp) * (lp - lq)).sum(axis=-1).mean())


class Probe:
    """The model's output divergence with one layer pruned alone: the mean KL divergence of its teacher-forced
    next-token distributions from the dense model's over the first ``PROBE_CLIPS`` calibration windows
    (``heldout``: pruned on the even fold, decoded on the first odd windows). ``trimmed``: each window's encoder
    runs on the audio + 1 s (``host.whisper.trimmed_ctx``), as the evaluation and the demo run it; otherwise on
    the full 30 s with its padding."""

    def __init__(
        self,
        weights: WhisperWeights,
        stats: CalibStats,
        tile: Tuple[int, int],
        method: str,
        damp: float,
        files: Sequence[Path],
        heldout: bool = False,
        trimmed: bool = False,
    ) -> None:
        self.stats, self.tile, self.method, self.damp, self.heldout = stats, tile, method, damp, heldout
        self.weights, self.files, self.trimmed = weights, files, trimmed

    @cached_property
    def gemm(self) -> DenseGemm:
        """The dense GEMMs a probe prunes one layer of at a time (built on first use: a cached analysis needs none)."""
        return DenseGemm(self.weights)

    @cached_property
    def runtime(self) -> WhisperRuntime:
        return WhisperRuntime(self.weights, self.gemm)

    @cached_property
    def clips(self) -> List[tuple]:
        """``(mel, encoder window, dense encoder output, dense transcript, dense logits)`` of each probe window
        (decoded once, on first use)."""
        windows = dense_windows(self.weights, self.files, desc="probe clips", progress=False, dense=self.gemm)
        picked = islice(windows, 1, None, 2) if self.heldout else windows
        out = []
        for c in islice(picked, PROBE_CLIPS):
            ctx = trimmed_ctx(c.frames * HOP_LENGTH, self.weights.config["n_audio_ctx"]) if self.trimmed else None
            enc = self.runtime.encode(c.mel, ctx) if self.trimmed else c.dense_enc
            tokens = self.runtime.decode(enc).tokens if self.trimmed else c.tokens
            out.append((c.mel, ctx, enc, tokens, teacher_forced_pass(self.runtime, enc, tokens)))
        return out

    def kl(self, name: str, rate: float) -> float:
        """Mean KL divergence at the model's output with layer ``name`` alone pruned at ``rate``."""
        if rate <= 0:
            return 0.0
        clips = self.clips  # the dense references first, before any layer is pruned
        w, b = self.gemm.ops[name]
        stats = self.stats
        fit = stats.folds(name)[0] if self.heldout and name in stats.gram else stats.gram.get(name)
        self.gemm.ops[name] = (prune_layer(w, self.tile, rate, self.method, fit, self.damp).weight, b)
        try:
            kl = 0.0
            for mel, ctx, enc, tokens, ref_logits in clips:
                enc_p = self.runtime.encode(mel, ctx) if name.startswith("encoder.") else enc
                kl += mean_kl(ref_logits, teacher_forced_pass(self.runtime, enc_p, tokens))
        finally:
            self.gemm.ops[name] = (w, b)
        return kl / len(clips)


def end_to_end_gains(
    probe: Probe, names: Sequence[str], errors: Dict[str, List[float]], probe_rate: float = PROBE_RATE
) -> Dict[str, float]:
    """``{layer: KL at the model output / layer relative error}``, each layer pruned alone at ``probe_rate``."""
    idx = RATES.index(probe_rate)
    return {
        name: probe.kl(name, probe_rate) / max(errors[name][idx], 1e-12)
        for name in tqdm(names, desc="end-to-end sensitivity", unit="layer")
    }


def cost_curves(
    errors: Dict[str, List[float]], gains: Dict[str, float], measured: Dict[str, Dict[float, float]]
) -> Dict[str, List[float]]:
    """Each layer's end-to-end cost at every rate of ``RATES``: the measured KL where the probe measured it
    (``measured[layer][rate]``), elsewhere the layer error scaled by the ratio KL / error at the nearest measured
    rate (the gain at ``PROBE_RATE`` when nothing else was measured)."""
    out = {}
    for name, errs in errors.items():
        points = {r: kl for r, kl in measured.get(name, {}).items() if r > 0}
        ratios = {r: kl / max(errs[RATES.index(r)], 1e-12) for r, kl in points.items()}
        ratios.setdefault(PROBE_RATE, gains[name])
        out[name] = [
            points[r] if r in points else e * ratios[min(ratios, key=lambda m: (round(abs(m - r), 6), m))]
            for r, e in zip(RATES, errs)
        ]
    return out


def refine_rates(
    probe: Probe,
    errors: Dict[str, List[float]],
    gains: Dict[str, float],
    measured: Dict[str, Dict[float, float]],
    macs: Dict[str, float],
    target: float,
    rounds: int,
) -> Dict[str, float]:
    """Per-layer rates for ``target``, the sensitivity measured where the allocation lands: each round allocates
    on :func:`cost_curves`, then probes every layer at its allocated rate and the next one (the step the greedy
    allocator weighs) where not yet measured, adding to ``measured`` in place; a last allocation uses them all.
    The probe at one rate assumes a layer's KL grows in proportion to its layer error; these probes replace
    that assumption near the operating point."""
    for _ in range(rounds):
        rates = allocate_rates(cost_curves(errors, gains, measured), RATES, macs, target)
        todo = [
            (name, r)
            for name, rate in rates.items()
            for r in RATES[RATES.index(rate) : RATES.index(rate) + 2]
            if r > 0 and r not in measured.get(name, {})
        ]
        if not todo:
            break
        for name, r in tqdm(todo, desc="probes at the allocated rates", unit="probe"):
            measured.setdefault(name, {})[r] = probe.kl(name, r)
    return allocate_rates(cost_curves(errors, gains, measured), RATES, macs, target)
