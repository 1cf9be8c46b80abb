"""The boards this project targets, from host/data/boards.json (the one owner of every board fact; numpy-free).

``resolve_board`` turns a ``--board`` value or the PYNQ image's ``$BOARD`` ("Pynq-Z2", "Ultra96V2") into a
board key; ``board_spec`` gives that board's :class:`BoardSpec`, ``board_profile`` its whole JSON entry.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

BOARDS_JSON = Path(__file__).resolve().parent / "data" / "boards.json"


class UnknownBoardError(ValueError):
    """A board name that is neither a key nor an alias of host/data/boards.json."""


@dataclass(frozen=True)
class BoardSpec:
    """One board: identity and design settings; ``profile`` is its whole boards.json entry (resources, CPU,
    host model, memory, stream, power, tools, each with its basis)."""

    key: str
    title: str
    part: str
    family: str
    aliases: Tuple[str, ...]
    default_array: int
    kernel_chunk: int
    pl_clock_mhz: float
    profile: Mapping[str, Any]


def _compact(name: str) -> str:
    """A board name compared without case, '-', '_' or spaces."""
    return re.sub(r"[-_\s]", "", name.lower())


@cache
def load_boards() -> Dict[str, dict]:
    """All board entries of host/data/boards.json by key."""
    with open(BOARDS_JSON, encoding="utf-8") as f:
        return json.load(f)["boards"]


@cache
def all_boards() -> Tuple[BoardSpec, ...]:
    """Every board of host/data/boards.json, in file order."""
    return tuple(
        BoardSpec(
            key=key,
            title=p["name"],
            part=p["part"],
            family=p["family"],
            aliases=tuple(p["aliases"]),
            default_array=int(p["default_array"]),
            kernel_chunk=int(p["kernel_chunk"]),
            pl_clock_mhz=float(p["pl_clock_mhz"]),
            profile=p,
        )
        for key, p in load_boards().items()
    )


def board_spec(name: Optional[str]) -> BoardSpec:
    """The board named ``name`` (a key or an alias), or the PYNQ image's ``$BOARD`` when ``name`` is empty."""
    raw = name or os.environ.get("BOARD", "")
    want = _compact(raw)
    for spec in all_boards():
        if want in {_compact(n) for n in (spec.key, *spec.aliases)}:
            return spec
    known = ", ".join(f"{b.key} ({', '.join(b.aliases)})" if b.aliases else b.key for b in all_boards())
    what = f"unknown board {raw!r}" if raw else "no board given and $BOARD is not set"
    raise UnknownBoardError(f"{what}; known boards: {known} (host/data/boards.json)")


def resolve_board(name: Optional[str]) -> str:
    """The key of the board named ``name`` (see :func:`board_spec`)."""
    return board_spec(name).key


def board_profile(name: str) -> Mapping[str, Any]:
    """The whole boards.json entry of the board named ``name``."""
    return board_spec(name).profile


def board_for_array(array: Union[int, Tuple[int, int]]) -> str:
    """The board an ``array`` (``A`` for A x A, or ``(R, C)``) is modeled on: the one whose default array it is,
    else the board with the most DSP slices."""
    r, c = (array, array) if isinstance(array, int) else (int(array[0]), int(array[1]))
    for spec in all_boards():
        if spec.default_array == r == c:
            return spec.key
    return max(all_boards(), key=lambda b: b.profile["resources"]["DSP"]).key
