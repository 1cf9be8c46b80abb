"""Whisper's GEMM layers by name: which may be pruned, and how many input rows each has per 30-s window.

A row of conv1's im2col input is one mel frame; a row of every later encoder GEMM and of the cross-attention
key/value projections is one encoder position (two frames); every other decoder GEMM has one row per token.
"""

from __future__ import annotations

import re
from typing import Optional

LOGITS_LAYER = "decoder.logits"  # the vocabulary projection (tied token embedding), never pruned
DEFAULT_PRUNABLE = r"^(encoder\.|decoder\.blocks\.)"  # every GEMM but the vocabulary projection
DECODER_TOKENS = 40  # typical decoded tokens per utterance, used to weigh decoder MACs
FRAME_LAYERS = ("encoder.conv1",)


def is_prunable(name: str, regex: str | re.Pattern = DEFAULT_PRUNABLE) -> bool:
    """Whether layer ``name`` matches the prunable-layer ``regex``; the logits layer never is."""
    return name != LOGITS_LAYER and re.search(regex, name) is not None


def row_unit(name: str) -> str:
    """What one input row of layer ``name`` is: ``frame``, ``position`` (encoder position) or ``token``."""
    if name in FRAME_LAYERS:
        return "frame"
    if name.startswith("encoder.") or ".cross_attn.key" in name or ".cross_attn.value" in name:
        return "position"
    return "token"


def layer_rows(name: str, n_audio_ctx: int = 1500, decoder_tokens: int = DECODER_TOKENS) -> int:
    """Rows (M) of a layer's GEMM per 30-s window: mel frames, encoder positions or decoded tokens."""
    return {"frame": 2 * n_audio_ctx, "position": n_audio_ctx, "token": decoder_tokens}[row_unit(name)]


def valid_rows(name: str, frames: int) -> Optional[int]:
    """Input rows of layer ``name`` that come from ``frames`` mel frames of real audio (``None``: all of them,
    the decoder's); the rest are the padding of the 30-s window."""
    return {"frame": frames, "position": (frames + 1) // 2, "token": None}[row_unit(name)]
