"""One recording through the runtime and its accelerator, and what it would cost on a board.

``runtime_from_package`` builds a Whisper runtime whose weight GEMMs run through a package on a backend.
``Session.transcribe`` runs a recording window by window (``host.longform``) and returns a ``Record``: the
windows and transcript, the accelerator calls and host work of the windows that ran the model, and the
accelerator's own counters (none for a float runtime, which has no accelerator). ``BoardFigures`` models
recorded calls and host work on a board: as recorded (pruned), with every tile present (dense) and with every
tile of every prunable layer removed (the pruning ceiling), latency and energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional

from host.audio import AudioReader
from host.calls import GemmCall
from host.driver import Accelerator, AcceleratorStats, FloatGemm
from host.longform import Window, iter_windows, join
from host.package import Package
from host.system_model import (
    HostOps,
    add_ops,
    dense_calls,
    host_ops,
    model_energy,
    model_latency,
    skipped_calls,
)
from host.whisper import WhisperRuntime
from host.whisper_layers import is_prunable


def runtime_from_package(package: Package, backend: str = "reference", **kwargs) -> WhisperRuntime:
    """A Whisper runtime whose every weight GEMM runs through the package on ``backend`` (or ``float``)."""
    gemm = FloatGemm(package) if backend == "float" else Accelerator(package, backend, **kwargs)
    return WhisperRuntime(package.weights, gemm)


class BoardFigures:
    """Modeled figures of recorded ``calls`` and host work ``ops`` on ``board`` with an ``array`` x ``array``
    kernel, each computed when first asked for."""

    def __init__(self, calls: List[GemmCall], ops: HostOps, board: str, array: int):
        self.calls, self.ops, self.board, self.array = calls, ops, board, array

    def _latency(self, calls: List[GemmCall]) -> dict:
        return model_latency(calls, self.ops, self.board, self.array)

    @cached_property
    def pruned(self) -> dict:
        """``model_latency`` of the calls as recorded."""
        return self._latency(self.calls)

    @cached_property
    def full(self) -> List[GemmCall]:
        """The calls with every tile present (``dense_calls``)."""
        return dense_calls(self.calls, self.array)

    @cached_property
    def dense(self) -> dict:
        """``model_latency`` of the same calls with every tile present: the unpruned int8 model."""
        return self._latency(self.full)

    @cached_property
    def ceiling(self) -> dict:
        """``model_latency`` of the dense calls with every tile of every prunable layer removed
        (``host.whisper_layers.is_prunable``): the most tile pruning could ever save."""
        return self._latency(skipped_calls(self.full, [c.layer for c in self.full if is_prunable(c.layer)]))

    @property
    def speedup(self) -> float:
        """Dense / pruned latency (1 without calls)."""
        return self.dense["total_s"] / self.pruned["total_s"] if self.calls else 1.0

    @property
    def max_speedup(self) -> float:
        """Dense / ceiling latency (1 without calls)."""
        return self.dense["total_s"] / self.ceiling["total_s"] if self.calls else 1.0

    @cached_property
    def energy(self) -> dict:
        """``model_energy`` of the pruned latency."""
        return model_energy(self.pruned)

    @cached_property
    def dense_energy(self) -> dict:
        """``model_energy`` of the dense latency."""
        return model_energy(self.dense)


@dataclass
class Record:
    """One recording transcribed window by window, with what it asked of the accelerator and the CPU."""

    seconds: float
    windows: List[Window]
    calls: List[GemmCall]  # accelerator calls of the windows that ran the model
    ops: HostOps  # their host work (host.system_model.host_ops)
    positions: List[int]  # encoder positions of each window that ran the model
    backend_s: Dict[str, float]  # accelerator backend seconds per stage on this machine
    stats: AcceleratorStats  # the accelerator's per-layer counters over the recording

    @property
    def text(self) -> str:
        """The whole transcript (``host.longform.join``)."""
        return join(self.windows)

    def on_board(self, board: str, array: int) -> BoardFigures:
        """The record's calls and host work modeled on ``board``."""
        return BoardFigures(self.calls, self.ops, board, array)


class Session:
    """Transcribes recordings with ``runtime``, whose GEMMs run on ``acc``, and records each."""

    def __init__(self, runtime: WhisperRuntime, acc: Optional[Accelerator] = None):
        """``acc``: default the runtime's ``gemm`` when it is an ``Accelerator``. Without one (float weights) the
        records hold no calls, host work (``host_ops`` models the CPU side of the accelerator path), backend
        seconds or counters."""
        if acc is None and isinstance(getattr(runtime, "gemm", None), Accelerator):  # duck-typed runtimes: none
            acc = runtime.gemm
        self.runtime, self.acc = runtime, acc

    def transcribe(self, path: Path, trim: bool = False, progress: bool = False) -> Record:
        """Transcribe the recording at ``path`` window by window (``trim``: each window's encoder runs on its
        audio, as ``--window trimmed``); the accelerator's calls and counters start afresh and are the record's."""
        rt, acc = self.runtime, self.acc
        if acc is not None:
            acc.take_calls()
            acc.take_stats()
        calls: List[GemmCall] = []
        ops: HostOps = {}
        positions: List[int] = []
        windows: List[Window] = []
        backend_s = {"features": 0.0, "encoder": 0.0, "decoder": 0.0}
        mark = [0.0]

        def on_stage(stage: str) -> None:
            now = acc.stats.total().backend_s
            backend_s[stage] += now - mark[0]
            mark[0] = now

        with AudioReader(path) as reader:
            for win in iter_windows(rt, reader, trim, progress, on_stage if acc is not None else None):
                if win.encoder_positions:
                    positions.append(win.encoder_positions)
                    if acc is not None:
                        calls.extend(acc.take_calls())
                        for positions_run, tokens_run in win.runs:  # a looped trimmed window runs twice
                            add_ops(ops, host_ops(rt.cfg, positions_run, tokens_run, rt.amm is not None))
                        for _, tokens_run in win.samples:  # sampled decodes reuse the full window's encoding
                            sample = host_ops(rt.cfg, rt.cfg["n_audio_ctx"], tokens_run, rt.amm is not None)
                            add_ops(ops, {"decoder": sample["decoder"]})
                windows.append(win)
            seconds = reader.seconds
        stats = acc.take_stats() if acc is not None else AcceleratorStats()
        return Record(seconds, windows, calls, ops, positions, backend_s, stats)
