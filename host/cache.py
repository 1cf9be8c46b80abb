"""Where everything cached lives (packages, calibration statistics, sensitivity, compiled kernels); what it holds
and pruning it by age: ``python -m host.cache_usage``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """``$SASP_CACHE``, or ``~/.cache/sasp-asr`` when it is not set (read at each call)."""
    return Path(os.environ.get("SASP_CACHE") or Path.home() / ".cache" / "sasp-asr")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (the key of what is cached from it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CacheRoot(os.PathLike):
    """``cache_root()`` at each use, as a path: a default (of an argument, a dataclass field or a CLI option)
    that honours ``$SASP_CACHE`` set after import; ``Path(...)``, ``os.fspath`` and ``/`` resolve it."""

    def __fspath__(self) -> str:
        return str(cache_root())

    def __truediv__(self, other: str) -> Path:
        return cache_root() / other

    def __repr__(self) -> str:
        return f"CacheRoot({cache_root()})"
