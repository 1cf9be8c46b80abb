"""The record of one accelerator call, kept by ``host.driver`` and priced by ``host.system_model``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class GemmCall:
    """One accelerator call: Whisper stage, layer, rows, shape and stored tiles per column block."""

    stage: str
    layer: str
    m: int
    k: int
    n: int
    nnz: Tuple[int, ...]
