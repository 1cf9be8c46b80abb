"""Where everything cached lives (packages, calibration statistics, sensitivity, compiled kernels)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$SASP_CACHE``, or ``~/.cache/sasp-asr`` when it is not set (read at each call)."""
    return Path(os.environ.get("SASP_CACHE") or Path.home() / ".cache" / "sasp-asr")
