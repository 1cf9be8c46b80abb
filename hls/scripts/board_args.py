"""Print the Vitis HLS -tclargs of a board from host/data/boards.json (its one owner of part, PL clock and
activation chunk): ``python3 hls/scripts/board_args.py pynq-z2`` -> ``part=xc7z020clg400-1 clock=10 chunk=96``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BOARDS = Path(__file__).resolve().parents[2] / "host" / "data" / "boards.json"
ALIASES = {"ultra96": "ultra96-v2"}


def board_args(board: str) -> str:
    boards = json.loads(BOARDS.read_text())["boards"]
    name = ALIASES.get(board, board)
    if name not in boards:
        raise SystemExit(f"board_args: unknown board {board!r} (one of {', '.join(sorted(boards))})")
    b = boards[name]
    return f"part={b['part']} clock={1000 / b['pl_clock_mhz']:.4g} chunk={b['kernel_chunk']}"


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if len(sys.argv) == 2 else 2)
    print(board_args(sys.argv[1]))
