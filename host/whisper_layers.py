"""Whisper's GEMM layers by name: their stage, which may be pruned, and how many input rows each has per 30-s
window.

``LAYER_KINDS`` is the one table of layer kinds: a row of conv1's im2col input is one mel frame; a row of every
later encoder GEMM (the attention products included) and of the cross-attention key/value projections is one
encoder position (two frames); every other decoder GEMM has one row per token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Optional, Tuple

LOGITS_LAYER = "decoder.logits"  # the vocabulary projection (tied token embedding), never pruned
DEFAULT_PRUNABLE = r"^(encoder\.|decoder\.blocks\.)"  # every GEMM but the vocabulary projection
DECODER_TOKENS = 40  # typical decoded tokens per utterance, used to weigh decoder MACs


@dataclass(frozen=True)
class LayerKind:
    """Layers whose names fully match ``pattern``: the Whisper ``stage`` they run in and what one input row is
    (``row_unit``: ``frame``, ``position`` or ``token``)."""

    pattern: str
    stage: str
    row_unit: str


LAYER_KINDS: Tuple[LayerKind, ...] = (  # first match wins
    LayerKind(r"encoder\.conv1", "encoder", "frame"),
    LayerKind(r"encoder\..+", "encoder", "position"),
    LayerKind(r"decoder\.blocks\.\d+\.cross_attn\.(key|value)", "decoder", "position"),
    LayerKind(r".*", "decoder", "token"),  # every other decoder GEMM (and a synthetic package's probe layer)
)


@cache
def layer_kind(name: str) -> LayerKind:
    """The ``LAYER_KINDS`` row of layer ``name``."""
    return next(kind for kind in LAYER_KINDS if re.fullmatch(kind.pattern, name))


def stage_of(name: str) -> str:
    """The Whisper stage (``encoder`` or ``decoder``) that runs layer ``name``."""
    return layer_kind(name).stage


def is_prunable(name: str, regex: str | re.Pattern = DEFAULT_PRUNABLE) -> bool:
    """Whether layer ``name`` matches the prunable-layer ``regex``; the logits layer never is."""
    return name != LOGITS_LAYER and re.search(regex, name) is not None


def row_unit(name: str) -> str:
    """What one input row of layer ``name`` is: ``frame``, ``position`` (encoder position) or ``token``."""
    return layer_kind(name).row_unit


def layer_rows(name: str, n_audio_ctx: int = 1500, decoder_tokens: int = DECODER_TOKENS) -> int:
    """Rows (M) of a layer's GEMM per 30-s window: mel frames, encoder positions or decoded tokens."""
    return {"frame": 2 * n_audio_ctx, "position": n_audio_ctx, "token": decoder_tokens}[row_unit(name)]


def valid_rows(name: str, frames: int) -> Optional[int]:
    """Input rows of layer ``name`` that come from ``frames`` mel frames of real audio (``None``: all of them,
    the decoder's); the rest are the padding of the 30-s window."""
    return {"frame": frames, "position": (frames + 1) // 2, "token": None}[row_unit(name)]
