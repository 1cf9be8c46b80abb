"""A board's build settings from host/data/boards.json, their one owner (key, part, board part, PL clock, chunk).

    python3 hls/scripts/board_args.py --tcl pynq-z2    a Tcl dict for hls/scripts/common.tcl and
                                                       overlay/scripts/config.tcl: key pynq-z2 part xc7z020clg400-1
                                                       board_part ... clk_mhz 100 clock_ns 10 chunk 96
    python3 hls/scripts/board_args.py --make pynq-z2   for the Makefiles: KEY=pynq-z2 PART=... CLK_MHZ=100 CHUNK=96

The board is a key or an alias of host/data/boards.json; an unknown one exits 1 with the known boards on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: host.boards (numpy-free)
from host.boards import BoardSpec, UnknownBoardError, board_spec  # noqa: E402


def _spec(board: str) -> BoardSpec:
    try:
        return board_spec(board)
    except UnknownBoardError as e:
        raise SystemExit(f"board_args: {e}") from None


def clock_ns(b: BoardSpec) -> str:
    """The PL clock period in ns as the HLS clock target (4 significant digits: 10, 6.667)."""
    return f"{1000 / b.pl_clock_mhz:.4g}"


def make_vars(board: str) -> str:
    """``KEY=... PART=... CLK_MHZ=... CHUNK=...`` of ``board`` for the Makefiles."""
    b = _spec(board)
    return f"KEY={b.key} PART={b.part} CLK_MHZ={b.pl_clock_mhz:g} CHUNK={b.kernel_chunk}"


def tcl_dict(board: str) -> str:
    """``key .. part .. board_part .. clk_mhz .. clock_ns .. chunk ..`` of ``board``: a Tcl dict."""
    b = _spec(board)
    return (
        f"key {b.key} part {b.part} board_part {b.profile['board_part']} clk_mhz {b.pl_clock_mhz:g} "
        f"clock_ns {clock_ns(b)} chunk {b.kernel_chunk}"
    )


MODES: Dict[str, Callable[[str], str]] = {"--make": make_vars, "--tcl": tcl_dict}

if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 2 or args[0] not in MODES:
        print(__doc__, file=sys.stderr if args[:1] not in (["-h"], ["--help"]) else sys.stdout)
        raise SystemExit(0 if args[:1] in (["-h"], ["--help"]) else 2)
    print(MODES[args[0]](args[1]))
