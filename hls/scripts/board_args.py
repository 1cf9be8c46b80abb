"""Print the Vitis HLS -tclargs of a board from host/data/boards.json (its one owner of part, PL clock and
activation chunk): ``python3 hls/scripts/board_args.py pynq-z2`` -> ``part=xc7z020clg400-1 clock=10 chunk=96``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: host.boards (numpy-free)
from host.boards import UnknownBoardError, board_spec  # noqa: E402


def board_args(board: str) -> str:
    """``part=... clock=<ns> chunk=...`` of ``board`` (a key or an alias of host/data/boards.json)."""
    try:
        b = board_spec(board)
    except UnknownBoardError as e:
        raise SystemExit(f"board_args: {e}") from None
    return f"part={b.part} clock={1000 / b.pl_clock_mhz:.4g} chunk={b.kernel_chunk}"


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if len(sys.argv) == 2 else 2)
    print(board_args(sys.argv[1]))
