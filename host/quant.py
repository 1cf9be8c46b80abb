"""Symmetric int8 quantization used at run time (activations, per row) and at export (weights, per column)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

QMAX = 127
F32_MIN_NORMAL = np.float32(1.1754944e-38)


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


def flush_subnormals(v: np.ndarray) -> np.ndarray:
    """float32 copy with subnormals set to zero, as the kernel's floating-point operators treat them (the
    AMD Floating-Point Operator core takes denormal operands as zero; PG109 says the FFT core matches it)."""
    v = np.asarray(v, dtype=np.float32).copy()
    v[np.abs(v) < F32_MIN_NORMAL] = 0.0
    return v


def kernel_epilogue(acc: np.ndarray, scale_x: np.ndarray, scale_w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Bit-exact model of the kernel's fused epilogue: ``fp16(float(acc) * sx * sw + b)``, each step one
    float32 operation rounded to nearest even in this order, then rounded to fp16 (overflow to infinity)."""
    sx, sw, b = (flush_subnormals(v) for v in (scale_x, scale_w, bias))
    return dequantize(acc, sx, sw, b).astype(np.float16)
