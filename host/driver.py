"""The accelerator seen by the Whisper runtime: ``Accelerator.matmul(x, layer)`` on a weight package.

Each call quantizes ``x`` per row to int8 and runs the int8 x int8 block-sparse GEMM with the kernel's fused
epilogue, ``fp16(acc * scale_x * scale_w + bias)``, on a backend. Backends:

- ``reference``: the exact integer numpy path on the block-compressed weights and a bit-exact numpy model of the
  epilogue (``host.quant.kernel_epilogue``);
- ``emulated``: the HLS kernel's own C++ compiled with g++ (C simulation), fed the same stream words as the DMA;
- ``pynq``: the overlay on a PYNQ-Z2 / Ultra96-V2 board (``host.pynq_backend``).

``FloatGemm`` runs float32 on the dequantized pruned weights (no activation quantization): the accuracy
baseline for a package.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.calls import GemmCall
from host.cycle_model import column_slabs, kernel_cycles
from host.errors import AcceleratorTimeoutError
from host.package import Package
from host.quant import kernel_epilogue, quantize_columns, quantize_rows
from host.stream import GemmOperand
from host.whisper_layers import stage_of

BACKENDS = ("reference", "emulated", "pynq")

Slab = Tuple[int, int, GemmOperand]  # (first column, end column, operand)


class Backend(Protocol):
    array: Tuple[int, int]
    chunk: int
    on_board: bool  # its wall times are measurements on a board (else emulated on this machine)

    def gemm(self, x_q: np.ndarray, scale_x: np.ndarray, op: GemmOperand) -> Tuple[np.ndarray, Optional[int]]:
        """float16 ``epilogue(x_q @ op.w)``, and the kernel's cycle count if the backend has one (else None)."""
        ...


class ReferenceBackend:
    """Exact integer numpy GEMM and the numpy model of the epilogue; cycles from the cycle model."""

    on_board = False

    def __init__(self, array: Tuple[int, int], chunk: int = 256):
        self.array, self.chunk = array, chunk

    def gemm(self, x_q: np.ndarray, scale_x: np.ndarray, op: GemmOperand) -> Tuple[np.ndarray, Optional[int]]:
        return kernel_epilogue(op.w.gemm_int(x_q), scale_x, op.scale, op.bias), None


class EmulatedBackend:
    """The HLS C++ kernel in C simulation (g++ + ctypes): bit-exact outputs and the kernel's cycle counter."""

    on_board = False

    def __init__(self, array: Tuple[int, int], chunk: Optional[int] = None, board: Optional[str] = None):
        """``chunk``: explicit, else the ``board``'s build, else that of the board the array is modeled on."""
        from host.emulator import EmulatedKernel

        self.kernel = EmulatedKernel(tuple(array), chunk, board=board)
        self.array, self.chunk = tuple(array), self.kernel.chunk
        self.max_concurrent = os.cpu_count() or 1  # C-simulation calls share nothing (host/emulator.py)
        self.k_max, self.n_max = self.kernel.k_max, self.kernel.n_max

    def gemm(self, x_q: np.ndarray, scale_x: np.ndarray, op: GemmOperand) -> Tuple[np.ndarray, Optional[int]]:
        y, cycles = self.kernel.run(x_q, scale_x, op)
        return y, int(cycles)


@dataclass
class LayerStats:
    calls: int = 0
    rows: int = 0
    macs_done: int = 0
    macs_dense: int = 0
    tiles_total: int = 0
    tiles_skipped: int = 0
    cycles: int = 0
    measured_cycles: int = 0
    backend_s: float = 0.0
    host_s: float = 0.0


@dataclass
class AcceleratorStats:
    layers: Dict[str, LayerStats] = field(default_factory=dict)

    def total(self) -> LayerStats:
        out = LayerStats()
        for s in self.layers.values():
            for k in out.__dataclass_fields__:
                setattr(out, k, getattr(out, k) + getattr(s, k))
        return out


def open_backend(name: str, array: Tuple[int, int], **kwargs) -> Backend:
    if name == "reference":
        return ReferenceBackend(array, **kwargs)
    if name == "emulated":
        return EmulatedBackend(array, **kwargs)
    if name == "pynq":
        from host.pynq_backend import PynqBackend

        return PynqBackend(array=array, **kwargs)
    raise ValueError(f"unknown backend {name!r}; choose from {BACKENDS}")


def split_columns(w: BlockSparseWeights, n_max: int) -> List[Tuple[int, int, BlockSparseWeights]]:
    """``[(first column, end column, weights)]`` slabs of at most ``n_max`` columns (``column_slabs``)."""
    c = w.tile[1]
    out = []
    for b0, b1 in column_slabs(w.n, w.tile, n_max):
        lo, hi = int(w.colptr[b0]), int(w.colptr[b1])
        part = BlockSparseWeights(
            tiles=w.tiles[lo:hi],
            colptr=(w.colptr[b0 : b1 + 1] - lo).astype(np.int32),
            kidx=w.kidx[lo:hi],
            k=w.k,
            n=min(w.n, b1 * c) - b0 * c,
            tile=w.tile,
        )
        out.append((b0 * c, b0 * c + part.n, part))
    return out


def operand_slabs(op: GemmOperand, n_max: Optional[int]) -> List[Tuple[int, int, GemmOperand]]:
    """``[(first column, end column, operand)]``: one slab, or several when N exceeds ``n_max`` (None: no limit)."""
    if n_max is None or op.w.n <= n_max:
        return [(0, op.w.n, op)]
    return [(lo, hi, op.columns(lo, hi, part)) for lo, hi, part in split_columns(op.w, n_max)]


def _float_columns(parts: List[np.ndarray]) -> np.ndarray:
    """The column slabs' outputs side by side, as float32."""
    if len(parts) == 1:
        return parts[0].astype(np.float32)
    return np.concatenate(parts, axis=1, dtype=np.float32)


class Accelerator:
    """Serves ``matmul(x, layer)`` for the runtime from a weight package on one backend."""

    def __init__(self, package: Package, backend: Backend | str = "reference", timeout_s: float = 60.0, **kwargs):
        self.backend = open_backend(backend, package.tile, **kwargs) if isinstance(backend, str) else backend
        if tuple(self.backend.array) != tuple(package.tile):
            raise ValueError(
                f"weight package {package.path} was built for {package.tile[0]}x{package.tile[1]} tiles but the "
                f"{type(self.backend).__name__} array is {self.backend.array[0]}x{self.backend.array[1]}: "
                f"export a package with --tile {self.backend.array[0]} or choose a matching array"
            )
        self.package = package
        self.timeout_s = timeout_s
        self.stats = AcceleratorStats()
        self.calls: List[GemmCall] = []
        self._cycle_memo: Dict[tuple, int] = {}
        self._nnz_memo: Dict[str, Tuple[int, ...]] = {}
        self._ops: Dict[str, List[Slab]] = {}
        workers = max(1, int(getattr(self.backend, "max_concurrent", 1)))
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="accel")
        self._broken: Optional[str] = None

    def _submit(self, x_q: np.ndarray, scale_x: np.ndarray, op: GemmOperand) -> concurrent.futures.Future:
        if self._broken:
            raise AcceleratorTimeoutError(f"accelerator unusable after an earlier time-out ({self._broken})")
        return self._pool.submit(self.backend.gemm, x_q, scale_x, op)

    def _result(self, future: concurrent.futures.Future, m: int, w: BlockSparseWeights, name: str):
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            self._broken = f"layer {name}"
            raise AcceleratorTimeoutError(
                f"GEMM for layer {name} (M={m}, K={w.k}, N={w.n}) did not finish "
                f"within {self.timeout_s:.1f} s: the kernel stalled (on a board: check TLAST on the output stream, "
                f"the DMA buffer-length register width and that host and kernel agree on the word count)"
            ) from None

    def matmul(self, x: np.ndarray, layer: str) -> np.ndarray:
        """``x[M, K] @ W_layer + bias`` through int8 quantization, the backend and the kernel's epilogue."""
        parts = self._ops.get(layer)
        if parts is None:
            q = self.package.layers[layer]
            parts = self._ops[layer] = self._slabs(GemmOperand(q.weights, q.scale, q.bias))
        return self._run([(x, parts)], layer)[0]

    def matmul_dynamic(self, pairs: Sequence[Tuple[np.ndarray, np.ndarray]], name: str) -> List[np.ndarray]:
        """``[a[M, K] @ b[K, N]]`` for independent pairs of activations (attention heads): each ``b`` is quantized
        per column and sent dense; the calls may run concurrently where the backend allows."""
        jobs = []
        for a, b in pairs:
            b_q, scale_b = quantize_columns(b)
            w = BlockSparseWeights.from_dense(b_q, self.backend.array)
            jobs.append((a, self._slabs(GemmOperand(w, scale_b, np.zeros(b.shape[1], np.float32), resident=False))))
        return self._run(jobs, name)

    def _slabs(self, op: GemmOperand) -> List[Slab]:
        return operand_slabs(op, getattr(self.backend, "n_max", None))

    def _run(self, jobs: Sequence[Tuple[np.ndarray, List[Slab]]], name: str) -> List[np.ndarray]:
        """Every kernel call of the ``(x, slabs)`` jobs (submitted at once, so a backend with ``max_concurrent``
        > 1 overlaps them), each recorded as one call; returns each job's float32 output."""
        t0 = time.perf_counter()
        quantized = [quantize_rows(x) for x, _ in jobs]
        t1 = time.perf_counter()
        futures = [[self._submit(*q, op) for _, _, op in parts] for q, (_, parts) in zip(quantized, jobs)]
        results = [
            [self._result(f, x.shape[0], op.w, name) for f, (_, _, op) in zip(fs, parts)]
            for fs, (x, parts) in zip(futures, jobs)
        ]
        t2 = time.perf_counter()
        outs = [_float_columns([y for y, _ in res]) for res in results]
        t3 = time.perf_counter()
        for (x, parts), res in zip(jobs, results):
            for (lo, hi, op), (_, measured) in zip(parts, res):
                self._record(name, name if len(parts) == 1 else f"{name}[{lo}:{hi}]", x.shape[0], op.w, measured)
        s = self.stats.layers[name]
        s.backend_s += t2 - t1
        s.host_s += (t1 - t0) + (t3 - t2)
        return outs

    def _record(self, name: str, key: str, m: int, w: BlockSparseWeights, measured: Optional[int]) -> None:
        nnz = self._nnz(key, w)
        self.calls.append(GemmCall(stage_of(name), name, m, w.k, w.n, nnz))
        s = self.stats.layers.setdefault(name, LayerStats())
        s.calls += 1
        s.rows += m
        s.macs_dense += m * w.k * w.n
        s.macs_done += m * w.nnz_tiles * w.tile[0] * w.tile[1]
        s.tiles_total += w.total_tiles
        s.tiles_skipped += w.total_tiles - w.nnz_tiles
        s.cycles += self._cycles(key, m, w, nnz)
        s.measured_cycles += measured or 0

    def _nnz(self, key: str, w: BlockSparseWeights) -> Tuple[int, ...]:
        """Stored tiles per column block; memoized for package layers (``key`` = layer or layer slab)."""
        if key.split("[")[0] not in self.package.layers:
            return tuple(int(v) for v in w.nnz_per_colblock)
        if key not in self._nnz_memo:
            self._nnz_memo[key] = tuple(int(v) for v in w.nnz_per_colblock)
        return self._nnz_memo[key]

    def _cycles(self, name: str, m: int, w: BlockSparseWeights, nnz: Tuple[int, ...]) -> int:
        """Cycle-model prediction for this call, memoized per (layer or shape, M): layers repeat every token."""
        key = (name if name.split("[")[0] in self.package.layers else (w.k, w.n, nnz), m)
        if key not in self._cycle_memo:
            self._cycle_memo[key] = kernel_cycles(m, w.k, w.n, nnz, self.backend.array, self.backend.chunk)
        return self._cycle_memo[key]

    def take_calls(self) -> List[GemmCall]:
        """The calls recorded since the last take (``calls``), which starts afresh."""
        calls, self.calls = self.calls, []
        return calls

    def take_stats(self) -> AcceleratorStats:
        """The per-layer counters gathered since the last take (``stats``), which start afresh."""
        stats, self.stats = self.stats, AcceleratorStats()
        return stats

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class FloatGemm:
    """Float32 GEMMs on the package's dequantized (pruned) weights: the package's accuracy baseline."""

    def __init__(self, package: Package):
        self.ops = {name: (q.dequantized(), q.bias) for name, q in package.layers.items()}

    def matmul(self, x: np.ndarray, layer: str) -> np.ndarray:
        w, b = self.ops[layer]
        return x @ w + b
