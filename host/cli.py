"""What every command-line entry point shares: one-line errors with exit code 2, checked option values.

A user error (bad option value, missing or unreadable input, bad package or audio) is reported as one line
naming the input and the fault, with exit code 2; ``--debug`` shows the traceback instead. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import sys
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence, Type, TypeVar

from host.audio import AudioError
from host.boards import UnknownBoardError, resolve_board
from host.cycle_model import geometry
from host.dataset import DatasetError
from host.package import PackageError


class UserError(ValueError):
    """A fault in what the user asked for; the message names the input and the fault."""


T = TypeVar("T")

USER_ERRORS = (UserError, PackageError, AudioError, DatasetError, UnknownBoardError, OSError)


class Parser(argparse.ArgumentParser):
    """``argparse`` with a ``--debug`` flag and one-line errors (``PROG: error: MESSAGE``, exit code 2)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", help="show the traceback of an error")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def entry_point(main: Callable[[Optional[List[str]]], int]) -> Callable[[Optional[Sequence[str]]], int]:
    """Wrap ``main(argv)``: a user error becomes ``error: MESSAGE`` on stderr and exit code 2 (re-raised with
    ``--debug``); Ctrl-C becomes ``interrupted`` and exit code 130."""

    @functools.wraps(main)
    def run(argv: Optional[Sequence[str]] = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        try:
            return main(args)
        except USER_ERRORS as e:
            if "--debug" in args:
                raise
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            if "--debug" in args:
                raise
            print("interrupted", file=sys.stderr)
            return 130

    return run


def _number(kind: type, lo: float, hi: Optional[float], lo_open: bool, hi_open: bool, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (
            value != value
            or value < lo
            or (lo_open and value == lo)
            or (hi is not None and (value > hi or (hi_open and value == hi)))
        ):
            raise argparse.ArgumentTypeError(f"{text} is out of range: expected {what}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


positive_int = _number(int, 1, None, False, False, "a positive integer")
nonnegative_int = _number(int, 0, None, False, False, "an integer >= 0")
positive_float = _number(float, 0.0, float("inf"), True, True, "a positive finite number")
nonnegative_float = _number(float, 0.0, float("inf"), False, True, "a finite number >= 0")
sparsity = _number(float, 0.0, 1.0, False, True, "a fraction in [0, 1)")


def regex(text: str) -> str:
    """A valid regular expression."""
    try:
        re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression ({e})") from None
    return text


def board(text: str) -> str:
    """A board of host/data/boards.json (its key or an alias) -> its key."""
    try:
        return resolve_board(text)
    except UnknownBoardError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def tile_fault(r: int, c: int) -> Optional[str]:
    """Why the kernel cannot run an ``r`` x ``c`` array (or tile), or ``None`` if it can."""
    if r < 1 or c < 1:
        return f"{r}x{c} is not a positive size"
    try:
        geometry(1, 1, (r, c))
    except ValueError as e:
        return str(e)
    return None


def array_size(text: str) -> int:
    """A square systolic array size the kernel supports (by the cycle model's geometry rule)."""
    n = positive_int(text)
    fault = tile_fault(n, n)
    if fault:
        raise argparse.ArgumentTypeError(fault)
    return n


def option(*flags: str, **kwargs: Any) -> Dict[str, Any]:
    """Dataclass field metadata binding the field to a command-line option: ``flags`` and ``add_argument``
    keywords (the default is the field's own unless given)."""
    return {"option": (flags, kwargs)}


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    prefix: str = "",
    only: Optional[Sequence[str]] = None,
    **overrides: Dict[str, Any],
) -> None:
    """Declare the options bound (``option``) to the fields of dataclass ``cls``, or to the fields ``only``;
    flags become ``--PREFIX...``, ``overrides[field]`` replaces ``add_argument`` keywords."""
    for f in dataclasses.fields(cls):
        if "option" not in f.metadata or (only is not None and f.name not in only):
            continue
        flags, kwargs = f.metadata["option"]
        kwargs = {**kwargs, **overrides.get(f.name, {})}
        if f.default is not dataclasses.MISSING and kwargs.get("action") != "store_true":
            kwargs.setdefault("default", list(f.default) if isinstance(f.default, tuple) else f.default)
        names = [f"--{prefix}{flag[2:]}" for flag in flags]
        if "choices" not in kwargs and kwargs.get("action") != "store_true":
            kwargs.setdefault("metavar", names[0][2:].upper().replace("-", "_"))  # as argparse names it
        parser.add_argument(*names, dest=(prefix + f.name).replace("-", "_"), **kwargs)


def options_from(args: argparse.Namespace, cls: Type[T], prefix: str = "", **values: Any) -> T:
    """A ``cls`` from the options ``add_options`` declared with the same ``prefix`` (lists become tuples); the
    other fields take ``values`` or their defaults."""
    for f in dataclasses.fields(cls):
        dest = (prefix + f.name).replace("-", "_")
        if "option" in f.metadata and f.name not in values and hasattr(args, dest):
            value = getattr(args, dest)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)
