"""Symmetric int8 quantization used at run time (activations, per row) and at export (weights, per column)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

QMAX = 127


def quantize_rows(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8: ``x ~= q * scale[:, None]`` with ``q`` in [-127, 127]; all-zero rows get scale 1."""
    x = np.asarray(x, dtype=np.float32)
    amax = np.abs(x).max(axis=1)
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(x / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    return q, scale


def quantize_columns(w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (column of ``W[K, N]``) symmetric int8: ``w ~= q * scale[None, :]``."""
    q_t, scale = quantize_rows(np.asarray(w, dtype=np.float32).T)
    return np.ascontiguousarray(q_t.T), scale


def dequantize(acc: np.ndarray, scale_x: np.ndarray, scale_w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``float32 = int32 accumulator * scale_x[M] * scale_w[N] + bias[N]``."""
    return (acc.astype(np.float32) * scale_x[:, None]) * scale_w[None, :] + bias[None, :]
