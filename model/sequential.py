"""Sequential pruning: each layer is compensated on the inputs it will see in the pruned model, towards the dense
model's output.

Plain compensation (``model.prune.compensate``) fits every layer on the dense model's activations, so the errors of
earlier pruned layers are nobody's business and add up through the network. Here the layers are pruned in the order
the model runs them, a *stage* at a time (the layers that read one tensor: Q/K/V, or all cross-attention K/V). For a
stage, the calibration clips run through the dense model and through the model pruned so far, recording the stage's
inputs on both: ``X_d`` (dense) and ``X_p`` (pruned). Each layer then solves

    min ||X_p W' - X_d W||^2 + lambda ||W' - W||^2   over the kept tiles of W'

which with ``H = X_p^T X_p`` and ``C = X_p^T X_d`` is ``(H_SS + lambda I) W'_S = C_S: W + lambda W_S`` per column
block: the layer absorbs what the pruned layers before it changed, as far as its kept weights can. Tiles are chosen
on ``H`` towards the layer's best unpruned answer ``W* = (H + lambda I)^-1 (C W + lambda W)``, by the configured
method. The per-layer rates are the plan's (``model.export.plan_rates``); the idea is that of SparseGPT/GPTQ
(Frantar & Alistarh 2023: each layer is compressed on the outputs of the already compressed layers), here with the
dense output as the target.

Clips run the full 30-s window and only rows of real audio count, as in ``model.calibrate``; the decoder runs
teacher-forced on the dense model's own greedy transcript in both models, so no labels are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from host.whisper import DenseGemm, WhisperRuntime
from host.whisper_layers import stage_of, valid_rows
from host.whisper_weights import WhisperWeights
from model.calibrate import Clip, dense_windows, teacher_forced_pass
from model.prune import DEFAULT_DAMP, PrunedLayer, compensate, tile_keep


class _StageDone(Exception):
    """Raised by the recording GEMM once every layer of the stage has been seen: the rest of the pass is not needed."""


class _Recorder(DenseGemm):
    """GEMMs of ``ops`` (a dict ``{layer: (W, b)}``, changed in place as layers are pruned) that keep the valid
    input rows of the ``stage`` layers and stop the pass once all of them ran."""

    def __init__(self, ops: Dict[str, tuple]):  # the operands are given: DenseGemm.__init__ is not run
        self.ops = ops
        self.stage: Tuple[str, ...] = ()
        self.frames = 0
        self.seen: Dict[str, np.ndarray] = {}

    def matmul(self, x: np.ndarray, layer: str) -> np.ndarray:
        if layer in self.stage:
            self.seen[layer] = x[: valid_rows(layer, self.frames)].astype(np.float64)
            if len(self.seen) == len(self.stage):
                raise _StageDone
        return super().matmul(x, layer)

    def run(
        self, stage: Tuple[str, ...], clip: Clip, runtime: WhisperRuntime, encoded: Optional[np.ndarray]
    ) -> Dict[str, np.ndarray]:
        """The ``stage`` layers' inputs on ``clip``: an encoder pass, or (``encoded`` given) a teacher-forced
        decoder pass on ``encoded``; stopped once they are all seen."""
        self.stage, self.frames, self.seen = stage, clip.frames, {}
        try:
            if encoded is None:
                runtime.encode(clip.mel)
            else:
                teacher_forced_pass(runtime, encoded, clip.tokens)
        except _StageDone:
            pass
        return self.seen


class _CallOrder(DenseGemm):
    """Dense GEMMs that list every call as ``(layer, input array)``."""

    def __init__(self, weights: WhisperWeights):
        super().__init__(weights)
        self.calls: List[Tuple[str, np.ndarray]] = []

    def matmul(self, x: np.ndarray, layer: str) -> np.ndarray:
        self.calls.append((layer, x))
        return super().matmul(x, layer)


def stages_in_order(weights: WhisperWeights, names: Sequence[str], mel: np.ndarray) -> List[Tuple[str, ...]]:
    """The layers ``names`` in the order one encode + teacher-forced decode calls them, consecutive calls that
    read the same input array grouped into one stage."""
    gemm = _CallOrder(weights)
    runtime = WhisperRuntime(weights, gemm)
    teacher_forced_pass(runtime, runtime.encode(mel), [])
    stages: List[List[str]] = []
    done: set = set()
    last: Optional[np.ndarray] = None
    for layer, x in gemm.calls:
        if layer in names and layer not in done:
            if stages and x is last:
                stages[-1].append(layer)
            else:
                stages.append([layer])
            done.add(layer)
        last = x
    return [tuple(s) for s in stages]


def calibration_clips(weights: WhisperWeights, files: Sequence[Path]) -> List[Clip]:
    """Every 30-s window of the calibration ``files`` with its dense encoder output and greedy transcript, kept in
    memory: the sequential passes run over them once per stage."""
    return list(dense_windows(weights, files, desc="sequential: dense passes"))


def sequential_prune(
    weights: WhisperWeights,
    clips: Sequence[Clip],
    tile: Tuple[int, int],
    rates: Dict[str, float],
    method: str,
    damp: float = DEFAULT_DAMP,
) -> Dict[str, PrunedLayer]:
    """Prune every layer of ``rates`` with a rate above zero, stage by stage in the model's order, each compensated
    on the pruned model's inputs towards the dense output (module docstring), on ``clips``
    (:func:`calibration_clips`)."""
    if not method.endswith("-ls"):
        raise ValueError(f"sequential pruning re-solves the kept weights: needs a '-ls' method, got {method!r}")
    todo = [n for n, r in rates.items() if r > 0]
    dense_ops = dict(DenseGemm(weights).ops)
    pruned_ops = dict(dense_ops)
    dense_rec, pruned_rec = _Recorder(dense_ops), _Recorder(pruned_ops)
    dense_rt, pruned_rt = WhisperRuntime(weights, dense_rec), WhisperRuntime(weights, pruned_rec)
    out: Dict[str, PrunedLayer] = {}
    for stage in tqdm(stages_in_order(weights, todo, clips[0].mel), desc="sequential pruning", unit="stage"):
        for c in clips:
            if stage_of(stage[0]) == "decoder" and c.pruned_enc is None:  # every encoder layer is done
                c.pruned_enc = WhisperRuntime(weights, _Recorder(pruned_ops)).encode(c.mel)
        gram: Dict[str, np.ndarray] = {}
        cross: Dict[str, np.ndarray] = {}
        decoder = stage_of(stage[0]) == "decoder"
        for c in clips:
            xd = dense_rec.run(stage, c, dense_rt, c.dense_enc if decoder else None)
            xp = pruned_rec.run(stage, c, pruned_rt, c.pruned_enc if decoder else None)
            for layer in stage:
                gram[layer] = gram.get(layer, 0) + xp[layer].T @ xp[layer]
                cross[layer] = cross.get(layer, 0) + xp[layer].T @ xd[layer]
        for layer in stage:
            w, b = dense_ops[layer]
            out[layer] = prune_towards(w, gram[layer], cross[layer], tile, rates[layer], method, damp)
            pruned_ops[layer] = (out[layer].weight, b)
    return out


def prune_towards(
    w: np.ndarray, gram: np.ndarray, cross: np.ndarray, tile: Tuple[int, int], rate: float, method: str, damp: float
) -> PrunedLayer:
    """Prune ``w`` at ``rate`` so that ``X_p W'`` stays close to ``X_d W`` (``gram = X_p^T X_p``,
    ``cross = X_p^T X_d``): tiles chosen on the best unpruned answer ``W*``, kept tiles re-solved."""
    lam = damp * float(np.mean(np.diag(gram))) + 1e-12
    w64 = w.astype(np.float64)
    best = np.linalg.solve(gram + lam * np.eye(len(gram)), cross @ w64 + lam * w64).astype(np.float32)
    keep = tile_keep(best, tile, rate, method, gram, damp)
    if keep.all():
        return PrunedLayer(best, keep)
    return PrunedLayer(compensate(w, keep, gram, tile, damp, cross=cross), keep)
