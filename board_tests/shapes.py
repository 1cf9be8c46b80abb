"""Whisper tiny.en GEMM shapes (M rows, K, N) for the board tests: d_model 384, 6 heads of 64, MLP 1536,
30-s window = 3000 mel frames -> 1500 encoder positions; decoder steps have M = 1. Plus the kernel's edge case:
few rows with all-pruned column blocks after the last stored tile (the drain must not read a row before the
compute pipeline has written it)."""

from __future__ import annotations

import zlib

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.stream import GemmOperand

ENC, DEC = 1500, 1
SHAPES = [
    # name, M, K, N
    ("encoder.conv1 (im2col)", 3000, 240, 384),
    ("encoder.conv2 (im2col)", 1500, 1152, 384),
    ("encoder.attn.q/k/v/out", ENC, 384, 384),
    ("encoder.mlp.fc1", ENC, 384, 1536),
    ("encoder.mlp.fc2", ENC, 1536, 384),
    ("encoder.attn q.k^T (one head)", ENC, 64, ENC),
    ("encoder.attn softmax.v (one head)", ENC, ENC, 64),
    ("decoder.cross_attn.key/value", ENC, 384, 384),
    ("decoder.attn.q/k/v/out", DEC, 384, 384),
    ("decoder.mlp.fc1", DEC, 384, 1536),
    ("decoder.mlp.fc2", DEC, 1536, 384),
    ("decoder.logits (N split)", DEC, 384, 51864),
] + [(f"trailing pruned column blocks, M={m}", m, 384, 384) for m in (1, 2, 3, 4)]


def seed(name: str) -> int:
    """A reproducible seed per case (``hash()`` is salted per process)."""
    return zlib.crc32(name.encode())


def random_case(rng: np.random.Generator, name: str, m: int, k: int, n: int, tile, density: float = 0.5):
    """int8 activations with row scales and a ``GemmOperand`` with about ``density`` of the tiles kept: the first
    column block fully pruned and the last fully dense, or, for the "trailing pruned" cases, every column block
    after the first third pruned; extreme values included."""
    w = rng.integers(-128, 128, (k, n), dtype=np.int16).astype(np.int8)
    kb, nb = -(-k // tile[0]), -(-n // tile[1])
    keep = rng.random((kb, nb)) < density
    if name.startswith("trailing"):
        keep[:, max(1, nb // 3) :] = False
    else:
        keep[:, 0] = False
        if nb > 1:
            keep[:, -1] = True
    x = rng.integers(-128, 128, (m, k), dtype=np.int16).astype(np.int8)
    x[0, :] = -128  # the largest magnitude products
    sx = (rng.random(m) * 0.02 + 1e-4).astype(np.float32)
    op = GemmOperand(
        BlockSparseWeights.from_dense(w, tuple(tile), keep),
        (rng.random(n) * 0.02 + 1e-4).astype(np.float32),
        rng.standard_normal(n).astype(np.float32),
    )
    return x, sx, op
