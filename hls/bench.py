#!/usr/bin/env python3
"""Benchmark of the sasp_gemm kernel on Whisper tiny.en GEMM shapes.

Prints, per array shape (``8`` or ``RxC``):
  * [modeled]  array utilization on dense weights (host/cycle_model.py == C-sim schedule counter);
  * [modeled]  cycles at 0/25/50/75 % tile sparsity as a fraction of dense, next to the ideal
               (kept-tile fraction);
  * [counted]  output bytes per encoder GEMM with the int32 output of kernel v1 and the fp16 epilogue;
  * [emulated (host wall time)]  GMAC/s of the C-sim library (host/emulator.py) and of the numpy
               model (BlockSparseWeights.gemm_int + host.quant.kernel_epilogue) on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.blocksparse import BlockSparseWeights  # noqa: E402
from host.cycle_model import (  # noqa: E402
    cycle_breakdown,
    dense_nnz,
    iter_shapes,
    kernel_cycles,
    output_words,
)
from host.quant import kernel_epilogue  # noqa: E402
from host.stream import GemmOperand  # noqa: E402


def _random_layer(rng: np.random.Generator, k: int, n: int, a, sparsity: float) -> BlockSparseWeights:
    kb, nb = -(-k // a[0]), -(-n // a[1])
    total = kb * nb
    keep = np.ones(total, dtype=bool)
    keep[rng.permutation(total)[: int(round(sparsity * total))]] = False
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    return BlockSparseWeights.from_dense(w, a, keep.reshape(kb, nb))


def _shape(text: str):
    r, _, c = text.partition("x")
    return int(r), int(c or r)


def modeled(args: argparse.Namespace, a) -> None:
    rng = np.random.default_rng(args.seed)
    m, ch = args.m, args.chunk
    print(f"\n== array {a[0]}x{a[1]}, chunk {ch}, M = {m} ==")
    print("[modeled] dense utilization (useful MACs / (cycles * R * C)) and cycles at 100 MHz")
    tot_mac = tot_cyc = 0
    for name, k, n in iter_shapes():
        nnz = dense_nnz(k, n, a)
        cyc = kernel_cycles(m, k, n, nnz, a, ch)
        pes = a[0] * a[1]
        macs = m * sum(nnz) * pes
        tot_mac += macs
        tot_cyc += cyc
        bd = cycle_breakdown(m, k, n, nnz, a, ch)
        over = {key: v for key, v in bd.items() if key != "blocks" and v}
        print(f"  {name:16s} K={k:5d} N={n:5d}  util {macs / (cyc * pes):6.2%}  {cyc:>10,d} cyc "
              f"({cyc / 1e5:7.2f} ms)  outside the blocks {over}")  # fmt: skip
    print(f"  {'all five':16s} {'':13s} util {tot_mac / (tot_cyc * a[0] * a[1]):6.2%}")
    print("[counted] output bytes per GEMM: int32 (kernel v1) -> fp16 epilogue (kernel v2)")
    for name, _, n in iter_shapes():
        b32, b16 = (8 * output_words(m, n, a, fp16) for fp16 in (False, True))
        print(f"  {name:16s} {b32 / 1e6:7.2f} MB -> {b16 / 1e6:7.2f} MB")
    print("[modeled] cycles / dense cycles at tile sparsity s (ideal = kept-tile fraction; random tile masks)")
    print("  " + " " * 16 + "".join(f"   s={s:<4.2f} (ideal)" for s in args.sparsities))
    for name, k, n in iter_shapes():
        dense = kernel_cycles(m, k, n, dense_nnz(k, n, a), a, ch)
        cells = []
        for s in args.sparsities:
            w = _random_layer(rng, k, n, a, s)
            frac = kernel_cycles(m, k, n, w.nnz_per_colblock, a, ch) / dense
            cells.append(f"  {frac:6.4f} ({w.nnz_tiles / w.total_tiles:6.4f})")
        floor = m * (-(-n // a[1])) * (a[1] // 4) / dense
        print(f"  {name:16s}" + "".join(cells) + f"   output-stream floor {floor:.3f}")


def emulated(args: argparse.Namespace, a) -> None:
    from host.emulator import EmulatedKernel

    rng = np.random.default_rng(args.seed + 1)
    ek = EmulatedKernel(a, chunk=args.chunk)
    m = args.emulate_m
    print(f"[emulated (host wall time)] M = {m}, dense weights, GMAC/s = executed MACs / wall time")
    t_cs = t_fp = macs_all = 0.0
    for name, k, n in iter_shapes():
        w = _random_layer(rng, k, n, a, 0.0)
        op = GemmOperand(w, np.full(n, 1e-4, np.float32), np.zeros(n, np.float32))
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        sx = np.full(m, 1e-2, np.float32)
        _ = op.segment  # built once per layer (load time), not per call
        macs = m * w.nnz_tiles * a[0] * a[1]
        t0 = time.perf_counter()
        y_cs, _ = ek.run(x, sx, op)
        t1 = time.perf_counter()
        y_fp = kernel_epilogue(w.gemm_int(x), sx, op.scale, op.bias)
        t2 = time.perf_counter()
        same = np.array_equal(y_cs.view(np.uint16), y_fp.view(np.uint16))
        t_cs += t1 - t0
        t_fp += t2 - t1
        macs_all += macs
        print(f"  {name:16s} C-sim {macs / (t1 - t0) / 1e9:6.3f} GMAC/s  fast path {macs / (t2 - t1) / 1e9:6.2f} GMAC/s"
              f"  bit-equal {same}")  # fmt: skip
        if not same:
            raise SystemExit("C-sim and fast path differ")
    print(
        f"  {'all five':16s} C-sim {macs_all / t_cs / 1e9:6.3f} GMAC/s  fast path {macs_all / t_fp / 1e9:6.2f} GMAC/s"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arrays", type=_shape, nargs="+", default=[(8, 8), (16, 12), (16, 16)],
                   help="array shapes, N or RxC (default 8 16x12 16)")  # fmt: skip
    p.add_argument("--m", type=int, default=1500, help="rows M for the modeled figures (default 1500)")
    p.add_argument("--chunk", type=int, default=96, help="on-chip activation rows (default 96 = PYNQ-Z2 build)")
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75])
    p.add_argument("--emulate-m", type=int, default=1500, help="rows M for the emulated throughput (default 1500)")
    p.add_argument("--no-emulate", action="store_true", help="skip the emulator throughput")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print("sasp_gemm benchmark: Whisper tiny.en GEMMs (conv via im2col); 'modeled' = exact schedule model,")
    print("'emulated' = g++ C-sim / numpy on this host (not FPGA speed)")
    for a in args.arrays:
        modeled(args, a)
        if not args.no_emulate:
            emulated(args, a)


if __name__ == "__main__":
    main()
