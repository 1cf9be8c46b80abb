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
from host.audio import DEMO_CLIP, AudioReader  # noqa: E402
from host.boards import all_boards  # noqa: E402
from host.driver import Accelerator  # noqa: E402
from host.longform import iter_windows  # noqa: E402
from host.package import load_package  # noqa: E402
from host.system_model import add_ops, dense_calls, host_ops, model_latency, skipped_calls  # noqa: E402
from host.whisper import WhisperRuntime  # noqa: E402
from host.whisper_layers import is_prunable  # noqa: E402


def run(pkg, path: Path, trim: bool) -> tuple:
    """``(calls, host ops, positions per window, text)`` of one recording on the reference backend."""
    acc = Accelerator(pkg, "reference")
    rt = WhisperRuntime(pkg.weights, acc)
    calls: list = []
    ops: dict = {}
    positions, text = [], []
    try:
        with AudioReader(path) as reader:
            for win in iter_windows(rt, reader, trim=trim, progress=False):
                if win.encoder_positions:
                    add_ops(ops, host_ops(rt.cfg, win.encoder_positions, win.tokens, rt.amm is not None))
                    positions.append(win.encoder_positions)
                calls.extend(acc.calls)
                acc.calls.clear()
                text.append(win.text)
    finally:
        acc.close()
    return calls, ops, positions, " ".join(t for t in text if t)


def main(argv: List[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", type=Path, nargs="+", default=[DEMO_CLIP], help="recordings (default: demo clip)")
    args = ap.parse_args(argv)
    print("| audio | window (positions) | board, array | latency | kernel | ceiling | max speedup from pruning |")
    print("|---|---|---|---|---|---|---|")
    for board in all_boards():
        a = board.default_array
        pkg = load_package(default_package(a, 0.0, "act-ls", []), expect_tile=(a, a))
        for path in args.audio:
            for trim in (False, True):
                calls, ops, positions, text = run(pkg, path, trim)
                full = dense_calls(calls, a)
                lat = model_latency(full, ops, board.key, a)
                floor = model_latency(
                    skipped_calls(full, [c.layer for c in full if is_prunable(c.layer)]), ops, board.key, a
                )
                kernel = sum(st["kernel_s"] for st in lat["stages"].values())
                print(
                    f"| {path.name} | {'trimmed' if trim else 'full'} ({'+'.join(map(str, positions))}) | "
                    f"{board.title}, {a}x{a} | {lat['total_s']:.2f} s | {kernel:.2f} s | {floor['total_s']:.2f} s | "
                    f"{lat['total_s'] / floor['total_s']:.2f}x |",
                    flush=True,
                )
                print(f"<!-- {path.name}, {'trimmed' if trim else 'full'} window: {text!r} -->", file=sys.stderr)
    print("all figures modeled (host/system_model.py, host/data/boards.json planning values)")


if __name__ == "__main__":
    main()
