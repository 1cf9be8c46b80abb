"""Prune, quantize and export Whisper tiny.en as one weight package for a given tile (= systolic array) shape.

    python -m model.export --tile 8 --sparsity 0.3 --method act-ls --calib DIR --out PATH

The target sparsity is a fraction of the prunable layers' MACs per utterance; per-layer rates come from a
sensitivity analysis on the calibration audio (``--uniform`` prunes every prunable layer at the same rate).
``--pattern`` chooses what goes: any tiles (``free``), whole FFN neurons (``ffn``), or FFN neurons and whole
attention heads (``units``), the structured patterns in tile-aligned runs (docs/pruning.md). ``--stats-audio``
chooses and compensates the tiles on the statistics of other unlabelled audio, while the per-layer rates still come
from the calibration audio (docs/pruning-log.md, "The GPU recipe on LibriSpeech"). Without ``--calib`` and
``--stats-audio``, the rates come from the bundled calibration set (host/assets/calib) and the tiles from it together
with the bundled statistics set (host/assets/stats; docs/pruning-log.md, "A shippable statistics set").
``--rates-from PACKAGE`` takes the per-layer rates from another package instead (e.g. the default's, for a model
from ``python -m model.rotate``).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from tqdm import tqdm

from host import cli
from host.audio import CALIB_DIR
from host.cache import file_digest
from host.dataset import list_audio_files
from host.package import FORMAT_NAME, FORMAT_VERSION, QUANT_SCHEME, atomic_path, counted_mac_sparsity, write_package
from host.whisper import gemm_operands
from host.whisper_layers import DEFAULT_PRUNABLE, layer_rows
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats, collect_stats
from model.dead_tiles import dead_tiles, sources_of
from model.package_inputs import input_digests
from model.permute import permute_for_tiles, search_record
from model.pipeline import (
    SHARED_OPTIONS,
    ExportConfig,
    add_export_options,
    export_config_from,
    step_cache,
    uses_statistics,
)
from model.prune import (
    DEFAULT_DAMP,
    PATTERNS,
    PrunedLayer,
    UnitGroup,
    allocate_rates,
    blocks,
    prune_layer,
    prune_units,
    round_units,
    unit_span,
)
from model.quantize import package_tensors
from model.search import RateSearch, SearchResult, search_rates
from model.sensitivity import RATES, Probe, end_to_end_gains, layer_errors, refine_rates
from model.sequential import calibration_clips, sequential_prune

if TYPE_CHECKING:
    from model.distill import DistillConfig


def layer_macs(ops: Dict[str, tuple], names: Sequence[str]) -> Dict[str, float]:
    return {n: float(layer_rows(n) * ops[n][0].shape[0] * ops[n][0].shape[1]) for n in names}


@dataclass
class ExportPlan:
    rates: Dict[str, float]
    mac_sparsity: float
    search: Optional[dict] = None  # the rate search's metadata (model.search), when one ran


def plan_rates(
    weights: WhisperWeights,
    ops: Dict[str, tuple],
    stats: Optional[CalibStats],
    cfg: ExportConfig,
    files: Sequence[Path],
) -> ExportPlan:
    """Per-layer rates reaching ``cfg.sparsity`` of the prunable MACs (uniform, or allocated by the measured
    sensitivity, cached by ``step_cache``)."""
    prunable = cfg.prunable_layers(ops)
    macs = layer_macs(ops, prunable)
    if cfg.sparsity <= 0:
        rates = {n: 0.0 for n in prunable}
    elif cfg.rates_from is not None:
        rates = package_rates(cfg.rates_from, cfg, prunable)
    elif cfg.uniform or stats is None:
        rates = {n: cfg.sparsity for n in prunable}
    else:
        cache = step_cache("sensitivity", cfg, weights, files)
        sens = read_sensitivity(cache, prunable) if cache is not None else None
        probe = Probe(weights, stats, cfg.tile, cfg.method, cfg.damp, files, cfg.heldout, cfg.probe == "trimmed")
        if sens is None:
            if cfg.heldout and not all(np.trace(f) > 0 for n in prunable for f in stats.folds(n)):
                raise cli.UserError(
                    "held-out sensitivity needs calibration audio of at least two 30-s windows: give more "
                    "calibration audio (or export with --sensitivity in-sample)"
                )
            errors = layer_errors(ops, stats, prunable, cfg.tile, cfg.method, cfg.damp, heldout=cfg.heldout)
            sens = {"errors": errors, "gains": end_to_end_gains(probe, prunable, errors)}
            write_sensitivity(cache, sens)
        if cfg.refine:
            measured = sens.setdefault("measured", {})
            probes = sum(map(len, measured.values()))
            rates = refine_rates(probe, sens["errors"], sens["gains"], measured, macs, cfg.sparsity, cfg.refine)
            if sum(map(len, measured.values())) > probes:  # new probes: keep them for the next export
                write_sensitivity(cache, sens)
        else:
            rates = allocate_rates(sens["errors"], RATES, macs, cfg.sparsity, weight=sens["gains"])
    found = searched_rates(weights, stats, cfg, files, macs, rates) if cfg.search and stats is not None else None
    rates = found[0].rates if found else rates
    total = sum(macs.values())
    done = sum(macs[n] * rates[n] for n in prunable)
    return ExportPlan(rates, done / total if total else 0.0, found[0].metadata(cfg.search, found[1]) if found else None)


def package_rates(path: Path, cfg: ExportConfig, prunable: Sequence[str]) -> Dict[str, float]:
    """Each prunable layer's rate as the package at ``path`` pruned it (its share of the layer's tiles, which
    ``prune_tiles`` rounds back to the same count), for an export of the same tile, target and prunable layers;
    anything else is a one-line ``UserError``."""
    from host.package import load_package

    pkg = load_package(path)
    meta = pkg.metadata
    found = {
        "tile": ("x".join(map(str, pkg.tile)), "x".join(map(str, cfg.tile))),
        "--sparsity": (float(meta.get("target_sparsity", 0.0)), cfg.sparsity),
        "--layers": (meta.get("prunable", DEFAULT_PRUNABLE), cfg.prunable),
    }
    for what, (theirs, ours) in found.items():
        if theirs != ours:
            raise cli.UserError(f"--rates-from {path}: the package has {what} {theirs}, this export {ours}")
    missing = [n for n in prunable if n not in pkg.layers]
    if missing:
        raise cli.UserError(f"--rates-from {path}: the package has no layer {missing[0]}")
    return {n: float(meta["layers"][n]["rate"]) for n in prunable}


def searched_rates(
    weights: WhisperWeights,
    stats: CalibStats,
    cfg: ExportConfig,
    calib_files: Sequence[Path],
    macs: Dict[str, float],
    start: Dict[str, float],
) -> Tuple[SearchResult, int]:
    """``(result, search files)`` of the rate search from the allocator's ``start`` (``model.search``), on the
    ``--search-audio`` files that are not calibration audio; cached by ``step_cache``."""
    calib = {file_digest(f) for f in calib_files}
    files = [f for f in list_audio_files(*cfg.search_audio) if file_digest(f) not in calib]
    if not files:
        raise cli.UserError("--search-audio: every file is also calibration audio; give other unlabelled audio")
    cache = step_cache("search", cfg, weights, [*calib_files, *files], extra={"start": start})
    result = SearchResult.read(cache, list(macs)) if cache is not None else None
    if result is None:
        try:
            search = RateSearch(weights, stats, macs, cfg.tile, cfg.method, cfg.damp)
            result = search_rates(search, start, cfg.sparsity, cfg.search, files)
        except ValueError as err:
            raise cli.UserError(f"--search-audio: {err}") from None
        if cache is not None:
            result.write(cache)
    return result, len(files)


def read_sensitivity(path: Path, prunable: Sequence[str]) -> Optional[dict]:
    """Cached ``{"errors": {layer: [error per rate]}, "gains": {layer: gain}, "measured": {layer: {rate: KL}}}``
    (``measured``: the refinement's probes, optional) for exactly the ``prunable`` layers, or ``None`` when it is
    missing, damaged or for other layers."""
    try:
        sens = json.loads(path.read_text(encoding="utf-8"))
        errors, gains = sens["errors"], sens["gains"]
        whole = set(errors) == set(gains) == set(prunable) and all(
            len(errors[n]) == len(RATES) and all(np.isfinite(errors[n])) and np.isfinite(gains[n]) for n in prunable
        )
        measured = {
            n: {float(r): float(kl) for r, kl in points.items()} for n, points in sens.get("measured", {}).items()
        }
        whole = whole and set(measured) <= set(prunable)
        whole = whole and all(r in RATES and np.isfinite(kl) for p in measured.values() for r, kl in p.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return {**sens, "measured": measured} if whole else None


def write_sensitivity(path: Optional[Path], sens: dict) -> None:
    """Write the sensitivity cache ``path`` atomically (``None``: no cache)."""
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(sens, indent=1))


def model_units(names: Sequence[str], pattern: str, config: Dict[str, int]) -> List[UnitGroup]:
    """Whisper's units among the GEMM layers ``names`` for ``pattern``: every block's FFN neurons (``mlp.0``
    columns = ``mlp.2`` rows) and, for ``units``, every attention's heads (query/key/value columns = out rows)."""
    groups = []
    for name in names:
        if name.endswith(".mlp.0"):
            groups.append(UnitGroup((name,), (name[:-1] + "2",), 1))
        elif pattern == "units" and name.endswith("attn.out"):
            side = "audio" if name.startswith("encoder.") else "text"
            base = name[: -len("out")]
            head_dim = config[f"n_{side}_state"] // config[f"n_{side}_head"]
            groups.append(UnitGroup((f"{base}query", f"{base}key", f"{base}value"), (name,), head_dim))
    return groups


def prune_structured(
    ops: Dict[str, tuple],
    config: Dict[str, int],
    tile: Tuple[int, int],
    rates: Dict[str, float],
    method: str,
    stats: Optional[CalibStats],
    damp: float,
    pattern: str,
) -> Tuple[Dict[str, PrunedLayer], Set[str]]:
    """Whole units of every group of ``pattern`` whose layers are all in ``rates``: each group prunes the MACs
    its layers' rates ask for, rounded to whole units (``round_units``). ``(pruned layers, structured layers)``;
    a structured layer missing from the first has no unit pruned."""
    groups = [g for g in model_units(list(ops), pattern, config) if set(g.layers) <= set(rates)]
    weights = {n: ops[n][0] for g in groups for n in g.layers}
    macs = layer_macs(ops, list(weights))
    want = [sum(rates[n] * macs[n] for n in g.layers) for g in groups]
    units = [-(-weights[g.row_layers[0]].shape[0] // unit_span(g.width, tile)) for g in groups]
    counts = round_units(want, [sum(macs[n] for n in g.layers) / u for g, u in zip(groups, units)])
    grams = stats.gram if stats is not None else None
    pruned: Dict[str, PrunedLayer] = {}
    for group, count in tqdm(list(zip(groups, counts)), desc=f"pruning {pattern} units ({method})", unit="group"):
        if count:
            pruned.update(prune_units(group, weights, tile, count, method, grams, damp))
    return pruned, set(weights)


def prune_weights(
    weights: WhisperWeights,
    tile: Tuple[int, int],
    rates: Dict[str, float],
    method: str,
    stats: Optional[CalibStats],
    damp: float = DEFAULT_DAMP,
    pattern: str = "free",
    sequential: Sequence[Path] = (),
    drop_dead: bool = False,
) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """``({layer: pruned W[K, N]}, {layer: keep mask})`` for every GEMM layer (unpruned ones unchanged);
    ``pattern`` other than ``free`` removes whole units where the model has them (``prune_structured``);
    calibration files in ``sequential`` prune layer after layer on them (``model.sequential``); ``drop_dead``
    prunes the tiles a pruned partner makes dead first (``model.dead_tiles``; free tiles)."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pruning pattern {pattern!r}; choose from {PATTERNS}")
    ops = gemm_operands(weights)
    pruned, keeps = {}, {}
    units: Dict[str, PrunedLayer] = {}
    structured: Set[str] = set()
    if pattern != "free":
        units, structured = prune_structured(ops, weights.config, tile, rates, method, stats, damp, pattern)
    elif sequential:
        units = sequential_prune(weights, calibration_clips(weights, sequential), tile, rates, method, damp)
    desc = f"pruning ({method})" if any(r > 0 for r in rates.values()) else "dense: no pruning"
    source = sources_of(list(ops)) if drop_dead else {}  # {partner: (source, axis)}: the sources are pruned first
    for name in tqdm(sorted(ops, key=lambda n: n in source), desc=desc, unit="layer"):
        w = ops[name][0]
        if name in units:
            pruned[name], keeps[name] = units[name].weight, units[name].keep
            continue
        rate = 0.0 if name in structured else rates.get(name, 0.0)
        if rate > 0:
            gram = stats.gram[name] if stats is not None else None
            dead = None
            if name in source:
                src, axis = source[name]
                dead = dead_tiles(keeps[src], ops[src][1], axis, tile, w.shape)
            res = prune_layer(w, tile, rate, method, gram, damp, dead if dead is not None and dead.any() else None)
            pruned[name], keeps[name] = res.weight, res.keep
        else:
            pruned[name], keeps[name] = w, np.ones(blocks(*w.shape, tile), bool)
    return {n: pruned[n] for n in ops}, {n: keeps[n] for n in ops}


def audio_stats(weights: WhisperWeights, cfg: ExportConfig, files: Sequence[Path]) -> CalibStats:
    """Statistics of the prunable layers' inputs on ``files`` (``collect_stats``, cached by ``step_cache``)."""
    prunable = cfg.prunable_layers(gemm_operands(weights))
    return collect_stats(weights, files, prunable, step_cache("calib", cfg, weights, files))


def calibration(weights: WhisperWeights, cfg: ExportConfig) -> Tuple[Optional[CalibStats], List[Path]]:
    """``(statistics, files)`` of the calibration audio (the bundled set when ``cfg.calib`` is empty); the
    statistics only when the pruning needs them."""
    calib = cfg.calib or ((CALIB_DIR,) if cfg.needs_calibration else ())
    files = list_audio_files(*calib) if calib else []
    return (audio_stats(weights, cfg, files) if cfg.needs_calibration else None), files


def tile_statistics(
    weights: WhisperWeights, cfg: ExportConfig, stats: Optional[CalibStats], files: List[Path]
) -> Tuple[Optional[CalibStats], List[Path]]:
    """``(statistics, files)`` that choose and compensate the tiles: those of the ``cfg.tile_audio`` files
    (``--stats-audio``, or the bundled sets by default; no statistics for ``--sequential``, which runs the files
    themselves), else the calibration's ``stats`` and ``files``; the rates came from the calibration's either way."""
    if not cfg.tile_audio or not cfg.needs_calibration:
        return stats, files
    files = list_audio_files(*cfg.tile_audio)
    return (None if cfg.sequential else audio_stats(weights, cfg, files)), files


def allocated_rates(weights: WhisperWeights, cfg: ExportConfig) -> Tuple[ExportPlan, Optional[CalibStats], List[Path]]:
    """Calibrate (cached) and plan the per-layer rates; ``(plan, calibration stats, calibration files)``."""
    ops = gemm_operands(weights)
    if cfg.sparsity > 0 and not cfg.prunable_layers(ops):
        raise cli.UserError(f"--layers {cfg.prunable!r} matches no prunable GEMM layer")
    stats, files = calibration(weights, cfg)
    return plan_rates(weights, ops, stats, cfg, files), stats, files


def only_matching(rates: Dict[str, float], regex: Optional[str]) -> Dict[str, float]:
    """``rates`` with every layer that ``regex`` (``--prune-only``) does not match set to 0 (dense); all of them
    when ``regex`` is ``None``."""
    if regex is None:
        return rates
    if not any(re.search(regex, n) for n, r in rates.items() if r > 0):
        raise cli.UserError(f"--prune-only {regex!r} matches no layer the allocation prunes")
    return {n: (r if re.search(regex, n) else 0.0) for n, r in rates.items()}


def export_package(out: Path, weights: WhisperWeights, cfg: ExportConfig) -> Path:
    """The whole offline flow: calibrate, plan per-layer rates, reorder the weights for the tiles (``cfg.permute``,
    ``model.permute``), prune (``cfg.pattern``; on the ``cfg.tile_audio`` statistics when given), quantize, write
    the package with ``cfg`` in its metadata (``export``).
    ``cfg.prune_only`` keeps the plan's rates in the layers it matches and leaves the others dense."""
    plan, calib_stats, calib_files = allocated_rates(weights, cfg)
    rates = only_matching(plan.rates, cfg.prune_only)
    stats, files = tile_statistics(weights, cfg, calib_stats, calib_files)
    inputs = input_digests(weights, calib_stats, rates, stats)  # by content, before --permute reorders them
    source_digest = inputs["weights"] if cfg.model else None  # --model's weights, for distillation's check
    shares, orders = None, None
    if cfg.permute and cfg.sparsity > 0 and stats is not None:
        weights, stats, shares, orders = permute_for_tiles(weights, stats, rates, cfg.tile)
    gemm_w, keeps = prune_weights(
        weights,
        cfg.tile,
        rates,
        cfg.method,
        stats,
        cfg.damp,
        cfg.pattern,
        files if cfg.sequential else (),
        cfg.drop_dead,
    )
    tensors, info = package_tensors(weights, gemm_w, keeps, cfg.tile)
    tile_counts = {n: (i["k"], i["n"], i["tiles_kept"], i["tiles_total"]) for n, i in info.items()}
    pruned, saved = cfg.sparsity > 0, cfg.metadata()
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": weights.config,
        "tile": list(cfg.tile),
        "method": cfg.method if pruned else "dense",
        "target_sparsity": cfg.sparsity,
        "mac_sparsity": counted_mac_sparsity(tile_counts, cfg.prunable),
        "allocation": "uniform" if cfg.uniform else "package" if cfg.rates_from is not None else "sensitivity",
        **({"pattern": cfg.pattern} if cfg.pattern != "free" and pruned else {}),
        **(cfg.opt_in() if pruned else {}),
        **({"permuted_groups": shares, "permutation": orders, "permute_search": search_record()} if shares else {}),
        **({"rate_search": plan.search} if plan.search else {}),
        "prunable": cfg.prunable,
        "quantization": QUANT_SCHEME,
        "layers": info,
        "source": saved["source"],
        **({"source_digest": source_digest} if source_digest else {}),
        "calibration_files": len(calib_files),
        **({"stats_audio_files": len(files)} if cfg.tile_audio and pruned else {}),
        "inputs": inputs,
        "export": saved,
    }
    return write_package(out, tensors, meta)


def export_distilled(
    out: Path, weights: WhisperWeights, cfg: ExportConfig, audio: Sequence[Path], distill_cfg: DistillConfig
) -> Path:
    """Export the pruned package beside ``out`` (``STEM-pruned.sasp``), then distill it on the ``audio``
    folders (``model.distill``) into ``out``, checkpointing to ``out`` with ``.ckpt``."""
    from model.distill import distill

    pruned = export_package(out.with_name(out.stem + "-pruned.sasp"), weights, cfg)
    return distill(pruned, weights, audio, out, distill_cfg, out.with_suffix(".ckpt"))


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    from model.distill import add_arguments, config_from, refuse_gradual_on_reordered

    ap = cli.Parser(prog="python -m model.export", description=__doc__)
    ap.add_argument("--tile", type=cli.positive_int, default=8, help="tile rows R (= systolic array rows), default 8")
    ap.add_argument("--tile-cols", type=cli.positive_int, default=None, help="tile columns C (default: = --tile)")
    ap.add_argument("--sparsity", type=cli.sparsity, default=0.0, help="target fraction of prunable MACs removed")
    add_export_options(
        ap,
        only=(*SHARED_OPTIONS, "stats_audio", "pattern", "sequential", "permute", "drop_dead")
        + ("search", "search_audio", "prune_only", "rates_from"),
    )
    ap.add_argument("--out", type=Path, required=True, help="output package path (.sasp)")
    ap.add_argument(
        "--distill",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="then distill the pruned package on this unlabelled audio (model.distill; --distill-* options)",
    )
    add_arguments(ap, prefix="distill-")
    args = ap.parse_args(argv)
    tile = (args.tile, args.tile_cols or args.tile)
    fault = cli.tile_fault(*tile)
    if fault:
        ap.error(f"argument --tile/--tile-cols: the kernel cannot run this tile: {fault}")
    if not args.uniform and args.sparsity > RATES[-1]:
        ap.error(f"argument --sparsity: at most {RATES[-1]} with sensitivity-based rates (or pass --uniform)")
    if args.distill and args.sparsity == 0:
        ap.error("argument --distill: needs --sparsity > 0 (a dense package has nothing to recover)")
    if args.distill and args.pattern != "free" and args.distill_schedule == "gradual":
        ap.error("argument --pattern: the gradual distillation schedule re-prunes free tiles (use oneshot)")
    if args.sequential and (args.pattern != "free" or not args.method.endswith("-ls")):
        ap.error("argument --sequential: needs --pattern free and a '-ls' --method (it re-solves the kept tiles)")
    if args.permute and (
        args.sparsity == 0 or args.pattern != "free" or args.sequential or not uses_statistics(args.method)
    ):
        ap.error(
            "argument --permute: needs --sparsity > 0, --pattern free, no --sequential and a --method that prunes "
            "on statistics (not magnitude)"
        )
    if args.drop_dead and (args.sparsity == 0 or args.pattern != "free" or args.sequential):
        ap.error("argument --drop-dead: needs --sparsity > 0, --pattern free and no --sequential")
    refuse_gradual_on_reordered(ap, args)
    if args.search and (args.uniform or args.pattern != "free" or args.sequential or args.sparsity == 0):
        ap.error("argument --search: needs --sparsity > 0 with sensitivity-based rates of free tiles")
    if args.search and not args.search_audio:
        ap.error("argument --search: needs --search-audio (unlabelled audio other than the calibration audio)")
    if args.search_audio:
        list_audio_files(*args.search_audio)
    if args.rates_from is not None and (args.sparsity == 0 or args.uniform or args.search or args.refine):
        ap.error("argument --rates-from: needs --sparsity > 0 (the package's) and no --uniform, --search or --refine")
    if args.rates_from is not None and not args.rates_from.is_file():
        ap.error(f"argument --rates-from: {args.rates_from} is not a file")
    if args.prune_only and (args.sparsity == 0 or args.pattern != "free"):
        ap.error("argument --prune-only: needs --sparsity > 0 and --pattern free (a unit spans several layers)")
    if args.out.is_dir():
        ap.error(f"argument --out: {args.out} is a directory")
    if args.stats_audio and (args.sparsity == 0 or not uses_statistics(args.method)):
        ap.error(
            "argument --stats-audio: needs --sparsity > 0 and a --method that prunes on statistics (not magnitude)"
        )
    for audio in (args.calib, args.stats_audio):
        if audio:
            list_audio_files(*audio)  # a missing or empty folder stops here, before any work
    from host.package import load_package
    from model.load import load_whisper

    cfg = export_config_from(args, tile=tile, sparsity=args.sparsity)
    weights = load_whisper(cfg.model)
    if args.distill:
        path = export_distilled(args.out, weights, cfg, args.distill, config_from(args, "distill-"))
    else:
        path = export_package(args.out, weights, cfg)
    pkg = load_package(path)
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): tile {tile[0]}x{tile[1]}, method {cfg.method}, "
        f"pattern {cfg.pattern}, "
        f"sparsity of prunable MACs {pkg.metadata['mac_sparsity']:.3f} (target {cfg.sparsity})"
        + (f", distilled ({pkg.metadata['distillation']['steps']} steps)" if "distillation" in pkg.metadata else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
