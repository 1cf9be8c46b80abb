"""The reference backend's exact int8 GEMM (``BlockSparseWeights.gemm_int``: the tiles expanded to one dense float32
matrix, one BLAS product) against the per-pattern product it replaced (one product per distinct pattern of kept
K-blocks, the column blocks of a pattern side by side), on every layer of a package, in one run.

    python benchmarks/bench_reference_gemm.py --package P.sasp [--rows 300] [--repeats 5] [--wav FILE]

For each layer and for ``M = --rows`` (an encoder window's rows; a trimmed window of a 5-s clip has about 300)
and ``M = 1`` (a decoder token), both methods run on the same random int8 input, alternately, and must agree
exactly; the script prints per layer kind the median wall time of each and their ratio, and as its last line the
sums over the package's layers (at ``M = --rows`` without the vocabulary projection, which runs one token at a
time; emulated wall time on this machine, which is shared: only the ratios of one run mean anything).
``--wav FILE`` also transcribes the file with the package on the ``reference`` backend (trimmed window) with
either product, alternately, ``--repeats`` times each: the transcripts must be the same, and the last line is the
median wall time of each and their ratio.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host import cli  # noqa: E402
from host.blocksparse import EXACT_ROWS, BlockSparseWeights  # noqa: E402
from host.package import Package, load_package  # noqa: E402
from host.whisper_layers import LOGITS_LAYER  # noqa: E402


def per_pattern_product(w: BlockSparseWeights) -> Callable[[np.ndarray], np.ndarray]:
    """The product before session 63: column blocks that store the same K-blocks multiplied together, over at most
    ``EXACT_ROWS`` K-rows at a time (exact for the same reason as ``gemm_int``)."""
    r, c = w.tile
    cp = np.asarray(w.colptr, dtype=np.int64)
    groups: Dict[bytes, List[int]] = defaultdict(list)
    for b in range(w.n_blocks):
        if cp[b + 1] > cp[b]:
            groups[np.asarray(w.kidx[cp[b] : cp[b + 1]]).tobytes()].append(b)
    step = max(r, (EXACT_ROWS // r) * r)
    plan = []
    for key, cols in groups.items():
        kblocks = np.frombuffer(key, dtype=np.asarray(w.kidx).dtype).astype(np.int64)
        nt = len(kblocks)
        slab = np.concatenate([w.tiles[cp[b] : cp[b] + nt].reshape(nt * r, c) for b in cols], axis=1)
        plan.append(
            (
                kblocks,
                np.asarray(cols),
                [(lo, slab[lo : lo + step].astype(np.float32)) for lo in range(0, nt * r, step)],
            )
        )

    def product(x_q: np.ndarray) -> np.ndarray:
        m = x_q.shape[0]
        xb = np.zeros((m, w.k_blocks * r), dtype=np.float32)
        xb[:, : w.k] = x_q
        xb = xb.reshape(m, w.k_blocks, r)
        y = np.zeros((m, w.n_blocks, c), dtype=np.int32)
        for kblocks, cols, mats in plan:
            xs = xb[:, kblocks, :].reshape(m, len(kblocks) * r)
            acc = np.zeros((m, len(cols) * c), dtype=np.int32)
            for lo, mat in mats:
                acc += (xs[:, lo : lo + mat.shape[0]] @ mat).astype(np.int32)
            y[:, cols, :] = acc.reshape(m, len(cols), c)
        return y.reshape(m, -1)[:, : w.n]

    product.patterns = len(plan)  # type: ignore[attr-defined]
    return product


def kept_per_pattern(w: BlockSparseWeights) -> Callable[[np.ndarray], np.ndarray]:
    """``w``'s per-pattern product, its plan built once and kept on the weights (as the replaced code kept it)."""
    if "_per_pattern" not in w.__dict__:
        w.__dict__["_per_pattern"] = per_pattern_product(w)
    return w.__dict__["_per_pattern"]


def by_pattern(w: BlockSparseWeights, x_q: np.ndarray) -> np.ndarray:
    """``gemm_int`` as it was: the per-pattern product."""
    return kept_per_pattern(w)(x_q)


def transcribe_both(pkg: Package, wav: Path, repeats: int) -> str:
    """Median wall time of transcribing ``wav`` with each product, alternately, and their ratio."""
    from host.driver import Accelerator
    from host.session import Session
    from host.whisper import WhisperRuntime

    acc = Accelerator(pkg, "reference")
    session = Session(WhisperRuntime(pkg.weights, acc), acc)
    dense = BlockSparseWeights.gemm_int
    times: Dict[str, List[float]] = {"per pattern": [], "dense": []}
    texts = set()
    try:
        for i in tqdm(range(2 * repeats + 2), desc="transcripts", unit="run"):
            name = ("per pattern", "dense")[i % 2]
            BlockSparseWeights.gemm_int = by_pattern if name == "per pattern" else dense  # type: ignore[method-assign]
            t = time.perf_counter()
            texts.add(session.transcribe(wav, trim=True).text)
            if i >= 2:  # the first run of each builds its cached weights
                times[name].append(time.perf_counter() - t)
    finally:
        BlockSparseWeights.gemm_int = dense  # type: ignore[method-assign]
        acc.close()
    if len(texts) != 1:
        raise AssertionError(f"{wav}: the two products transcribe differently: {sorted(texts)}")
    old, new = (statistics.median(times[k]) for k in ("per pattern", "dense"))
    return (
        f"{wav.name} transcribed (reference backend, trimmed window; emulated wall time, this machine): per pattern "
        f"{old:.2f} s, dense {new:.2f} s, "
        f"ratio {old / new:.1f}x"
    )


def timed(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, repeats: int) -> Tuple[float, np.ndarray]:
    """Median wall time of ``repeats`` calls ``fn(x)`` and the last result."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def kind(name: str) -> str:
    """``encoder.blocks.3.mlp.0`` -> ``encoder mlp.0``."""
    parts = name.split(".")
    return f"{parts[0]} {'.'.join(parts[3:])}" if len(parts) > 3 else name


@cli.entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = cli.Parser(description=__doc__)
    ap.add_argument("--package", type=Path, required=True, help="weight package (.sasp)")
    ap.add_argument("--rows", type=cli.positive_int, default=300, help="M of the encoder-sized product")
    ap.add_argument("--repeats", type=cli.positive_int, default=5, help="timed calls per method, layer and M")
    ap.add_argument("--wav", type=Path, default=None, help="also transcribe this file with either product")
    args = ap.parse_args(argv)
    if args.wav is not None and not args.wav.is_file():
        raise cli.UserError(f"--wav {args.wav}: no such file")
    pkg = load_package(args.package)
    rng = np.random.default_rng(0)
    sums: Dict[int, List[float]] = {m: [0.0, 0.0] for m in (args.rows, 1)}
    rows: Dict[Tuple[str, int], List[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for name, q in tqdm(pkg.layers.items(), desc="layers", unit="layer"):
        w = q.weights
        old = kept_per_pattern(w)  # built once: --wav's transcripts reuse it
        w.gemm_int(np.zeros((1, w.k), np.int8))  # expand the dense copy once, as the backend keeps it
        for m in (args.rows, 1):
            x = rng.integers(-128, 128, (m, w.k), dtype=np.int8)
            t_new, y_new = timed(w.gemm_int, x, args.repeats)
            t_old, y_old = timed(old, x, args.repeats)
            if not np.array_equal(y_new, y_old):
                raise AssertionError(f"{name}, M={m}: the two products differ")
            row = rows[(kind(name), m)]
            row[0] += t_old
            row[1] += t_new
            row[2] += old.patterns  # type: ignore[attr-defined]
            row[3] += 1
            if m == 1 or name != LOGITS_LAYER:
                sums[m][0] += t_old
                sums[m][1] += t_new
    print(
        f"{args.package.name}: tile {pkg.tile[0]}x{pkg.tile[1]}; emulated wall time, this machine, "
        f"median of {args.repeats}"
    )
    print("| layers | M | count | patterns (mean) | per pattern, ms | dense, ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for (k, m), (t_old, t_new, pats, count) in sorted(rows.items()):
        print(
            f"| {k} | {m} | {count:.0f} | {pats / count:.0f} | {1e3 * t_old:.2f} | {1e3 * t_new:.2f} "
            f"| {t_old / t_new:.1f}x |"
        )
    m_big = args.rows
    print(
        f"all {len(pkg.layers)} layers: M={m_big} (without {LOGITS_LAYER}) per pattern {sums[m_big][0]:.3f} s, "
        f"dense {sums[m_big][1]:.3f} s, "
        f"ratio {sums[m_big][0] / sums[m_big][1]:.1f}x; M=1 per pattern {1e3 * sums[1][0]:.1f} ms, dense "
        f"{1e3 * sums[1][1]:.1f} ms, ratio {sums[1][0] / sums[1][1]:.1f}x"
    )
    if args.wav is not None:
        print(transcribe_both(pkg, args.wav, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
