"""Quantize: pruned (or distilled) float GEMM weights to the package's int8 block-sparse tensors, and pruned
weights back into a :class:`WhisperWeights` (the step between pruning/distillation and writing the package)."""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.package import SUPPRESS_KEYS, VOCAB_KEY
from host.quant import quantize_columns
from host.whisper import gemm_operands
from host.whisper_layers import LOGITS_LAYER
from host.whisper_weights import WhisperWeights


def with_gemm_weights(weights: WhisperWeights, gemm_w: Dict[str, np.ndarray]) -> WhisperWeights:
    """A copy of ``weights`` whose GEMM weights are replaced (``W[K, N]`` back to the torch layout)."""
    params = dict(weights.params)
    for name, w in gemm_w.items():
        if name == LOGITS_LAYER:
            continue
        shape = params[f"{name}.weight"].shape
        params[f"{name}.weight"] = np.ascontiguousarray(w.T).reshape(shape)
    return dataclasses.replace(weights, params=params)


def package_tensors(
    weights: WhisperWeights, gemm_w: Dict[str, np.ndarray], keeps: Dict[str, np.ndarray], tile: Tuple[int, int]
) -> Tuple[Dict[str, np.ndarray], Dict[str, dict]]:
    """Quantize every GEMM to int8 block-sparse form; host tensors stay float (float16 when lossless)."""
    ops = gemm_operands(weights)
    tensors: Dict[str, np.ndarray] = {}
    info: Dict[str, dict] = {}
    for name, w in gemm_w.items():
        q, scale = quantize_columns(w)
        bsr = BlockSparseWeights.from_dense(q, tile, keeps[name])
        tensors.update(
            {
                f"{name}.tiles": bsr.tiles,
                f"{name}.colptr": bsr.colptr,
                f"{name}.kidx": bsr.kidx,
                f"{name}.scale": scale,
                f"{name}.bias": ops[name][1].astype(np.float32),
            }
        )
        info[name] = {
            "k": int(w.shape[0]),
            "n": int(w.shape[1]),
            "tiles_kept": int(bsr.nnz_tiles),
            "tiles_total": int(bsr.total_tiles),
            "rate": 1.0 - bsr.nnz_tiles / bsr.total_tiles,
        }
    gemm_params = {f"{n}.{s}" for n in gemm_w for s in ("weight", "bias")}
    for key, arr in weights.params.items():
        if key in gemm_params:
            continue
        half = arr.astype(np.float16)
        tensors[key] = half if np.array_equal(half.astype(np.float32), arr) else arr.astype(np.float32)
    tensors[VOCAB_KEY] = np.frombuffer("\n".join(weights.vocab).encode("utf-8"), dtype=np.uint8)
    tensors[SUPPRESS_KEYS[0]] = np.asarray(weights.suppress_ids, np.int32)
    tensors[SUPPRESS_KEYS[1]] = np.asarray(weights.suppress_ids_begin, np.int32)
    return tensors, info
