"""A board's build settings from host/data/boards.json (their one owner: part, board part, PL clock, chunk).

    python3 hls/scripts/board_args.py pynq-z2          Vitis HLS -tclargs: part=xc7z020clg400-1 clock=10 chunk=96
    python3 hls/scripts/board_args.py --make pynq-z2   overlay Makefile: KEY=pynq-z2 PART=... CLK_MHZ=100 CHUNK=96
    python3 hls/scripts/board_args.py --tcl pynq-z2    overlay/scripts/config.tcl: a Tcl dict (key part board_part
                                                       clk_mhz)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: host.boards (numpy-free)
from host.boards import BoardSpec, UnknownBoardError, board_spec  # noqa: E402


def _spec(board: str) -> BoardSpec:
    try:
        return board_spec(board)
    except UnknownBoardError as e:
        raise SystemExit(f"board_args: {e}") from None


def board_args(board: str) -> str:
    """``part=... clock=<ns> chunk=...`` of ``board`` (a key or an alias of host/data/boards.json)."""
    b = _spec(board)
    return f"part={b.part} clock={1000 / b.pl_clock_mhz:.4g} chunk={b.kernel_chunk}"


def make_vars(board: str) -> str:
    """``KEY=... PART=... CLK_MHZ=... CHUNK=...`` of ``board`` for the overlay Makefile."""
    b = _spec(board)
    return f"KEY={b.key} PART={b.part} CLK_MHZ={b.pl_clock_mhz:g} CHUNK={b.kernel_chunk}"


def tcl_dict(board: str) -> str:
    """``key .. part .. board_part .. clk_mhz ..`` of ``board``: a Tcl dict for the overlay's block design."""
    b = _spec(board)
    return f"key {b.key} part {b.part} board_part {b.profile['board_part']} clk_mhz {b.pl_clock_mhz:g}"


if __name__ == "__main__":
    modes = {"--make": make_vars, "--tcl": tcl_dict}
    args = sys.argv[1:]
    mode = modes.get(args[0], board_args) if args else board_args
    if len(args) != 1 + (mode is not board_args) or args[-1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if args and args[-1] in ("-h", "--help") else 2)
    print(mode(args[-1]))
