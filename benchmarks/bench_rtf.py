"""Real-time factor of the numpy runtime vs the torch reference, for a 5-s and a 30-s synthesized clip.

    python benchmarks/bench_rtf.py [--repeats N]

Both run dense float32 on this machine in one process, one after the other (emulated: host wall time). RTF =
processing time / audio duration (lower is faster); the 30-s window makes the encoder's cost the same for both
clips, the decoder's grows with the transcript.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from host.audio import load_audio
from host.whisper import WhisperRuntime
from host.whisper_weights import load_ct2_dir
from model.reference import TorchWhisper
from model.synth_speech import synthesize_long


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2, help="runs per measurement (best is reported)")
    args = ap.parse_args()
    weights = load_ct2_dir()
    rt = WhisperRuntime(weights)
    ref = TorchWhisper(weights)
    print(f"torch threads: {torch.get_num_threads()}; figures are emulated (host wall time, best of {args.repeats})")
    print(f"{'clip':>6} {'tokens':>6} {'numpy s':>8} {'numpy RTF':>9} {'torch s':>8} {'torch RTF':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (5, 30):
            path = synthesize_long(Path(tmp) / f"clip{seconds}.flac", seconds)
            audio = load_audio(path)
            tokens = rt.transcribe(audio).tokens

            def run_torch(a=audio):
                enc = ref.encode(ref.log_mel(a))
                ref.greedy(enc, rt.tokenizer.initial_tokens(), rt.tokenizer.eot, rt._suppress)

            t_np = best_of(lambda a=audio: rt.transcribe(a), args.repeats)
            t_torch = best_of(run_torch, args.repeats)
            dur = len(audio) / 16000
            print(
                f"{seconds:>5}s {len(tokens):>6} {t_np:8.2f} {t_np / dur:9.3f} {t_torch:8.2f} {t_torch / dur:9.3f} "
                f"{t_np / t_torch:6.2f}"
            )
    print(
        "torch reference decodes without a KV cache (the whole prefix each step): it is a cross-check, not a "
        "tuned baseline"
    )


if __name__ == "__main__":
    main()
