"""Modeled on-board latency, full vs bucketed trimmed encoder window, and what tile pruning could buy at most.

    python benchmarks/window_table.py [--audio FILE ...]

For each board of host/data/boards.json on its default array, the audio (default: the bundled 4-s demo clip) is
transcribed with the dense int8 package on the ``reference`` backend (bit-exact with the kernel) twice: with the
full 30-s window and with the window trimmed to the audio plus 1 s, rounded up to a bucket
(``host.whisper.window_buckets``). From the recorded calls and host work the system model gives, per run: the
modeled latency, the kernel's share, and the *pruning ceiling*: the same calls with every tile of every prunable
layer removed (the most tile pruning could ever save; attention products and the vocabulary projection stay).
Every latency is ``modeled``; the transcripts are this machine's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.asr_demo import default_package  # noqa: E402
from host.audio import DEMO_CLIP  # noqa: E402
from host.boards import all_boards  # noqa: E402
from host.driver import Accelerator  # noqa: E402
from host.package import load_package  # noqa: E402
from host.session import Session  # noqa: E402
from host.whisper import WhisperRuntime  # noqa: E402


def main(argv: List[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, nargs="+", default=[DEMO_CLIP], help="recordings (default: demo clip)")
    args = ap.parse_args(argv)
    print("| audio | window (positions) | board, array | latency | kernel | ceiling | max speedup from pruning |")
    print("|---|---|---|---|---|---|---|")
    for board in all_boards():
        a = board.default_array
        pkg = load_package(default_package(a, 0.0, "act-ls", []), expect_tile=(a, a))
        acc = Accelerator(pkg, "reference")
        session = Session(WhisperRuntime(pkg.weights, acc), acc)
        try:
            for path in args.audio:
                for trim in (False, True):
                    rec = session.transcribe(path, trim)
                    fig = rec.on_board(board.key, a)
                    lat, floor = fig.dense, fig.ceiling
                    kernel = sum(st["kernel_s"] for st in lat["stages"].values())
                    print(
                        f"| {path.name} | {'trimmed' if trim else 'full'} ({'+'.join(map(str, rec.positions))}) | "
                        f"{board.title}, {a}x{a} | {lat['total_s']:.2f} s | {kernel:.2f} s | "
                        f"{floor['total_s']:.2f} s | {fig.max_speedup:.2f}x |",
                        flush=True,
                    )
                    window = "trimmed" if trim else "full"
                    print(f"<!-- {path.name}, {window} window: {rec.text!r} -->", file=sys.stderr)
        finally:
            acc.close()
    print("all figures modeled (host/system_model.py, host/data/boards.json planning values)")


if __name__ == "__main__":
    main()
