"""Co-design sweep: systolic array size x SASP sparsity -> WER, modeled latency/energy on a board, FPGA resources.

    python -m model.sweep --board pynq-z2 --arrays 8 16 32 --sparsity 0 0.1 0.2 0.3 0.4 0.5 \\
        --method act-ls --eval DIR --calib DIR --out results/sweep [--limit N] [--workers N] [--ray ADDRESS|auto]

For every (array, sparsity) point: export (or reuse from OUT/packages) a weight package whose tile is the array,
evaluate it on the LibriSpeech-layout --eval folder with the exact int8 reference path (WER by jiwer, labelled
``measured (jiwer)``), and model each utterance's on-board latency and energy from the GEMM calls the
Accelerator recorded (``host.system_model``, labelled ``modeled``); the speedup is against the dense (sparsity 0)
point of the same array, which is always added to the grid. The FPGA resources of the array come from
``host.resources`` (``modeled``); MAC sparsity and tile counts are ``counted``. Several --board values model the
same evaluation on several boards (the recorded calls do not depend on the board). ``--permute`` reorders the
weights before every pruned point's tiles are chosen (``model.export --permute``; points and packages of their own).

Calibration audio (--calib, unlabelled) and evaluation audio (--eval) must be different files: the sweep refuses
to start otherwise. Results: OUT/sweep.csv, OUT/sweep.json, plots in OUT/plots/. Resumable: each finished point
is OUT/points/<point>-<fingerprint>.json and is skipped on a rerun with the same evaluation set, calibration
set and settings (the fingerprint); boards can be added on a rerun without evaluating again.

Scale-out: points run in --workers local processes (default 1: in this process), or as Ray tasks with
--ray ADDRESS (``auto`` = the running cluster, ``local`` = start a local instance with --workers CPUs). Ray
workers must see the same file system paths (evaluation/calibration audio, OUT, the cache dir).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from tqdm import tqdm

from host import cli
from host.boards import resolve_board
from host.calls import GemmCall
from host.dataset import Utterance, list_audio_files, read_librispeech
from host.report import figure
from host.resources import estimate_resources
from host.session import BoardFigures, Record
from host.system_model import STAGES, HostOps, add_ops
from model.pipeline import SHARED_OPTIONS, ExportConfig, add_export_options, export_config_from
from model.splits import HALVES, wer_by_half

SCHEMA = "sasp-sweep/2"  # 2: per-class host operation counts ("host_ops")
WER_BUDGET = 0.014  # the paper's headline: 1.4 WER points above dense
LABELS = {
    "wer": "measured (jiwer)",
    "latency": "modeled",
    "energy": "modeled",
    "speedup": "modeled",
    "resources": "modeled",
    "mac_sparsity": "counted",
    "tiles": "counted",
    "audio": "counted",
}


@dataclass(frozen=True)
class Point:
    """One grid point: array size (= tile R = C) and target MAC sparsity (0 = dense int8)."""

    array: int
    sparsity: float
    method: str

    @property
    def dense(self) -> bool:
        return self.sparsity <= 0

    @property
    def key(self) -> str:
        return f"a{self.array}-dense" if self.dense else f"a{self.array}-s{self.sparsity:.2f}-{self.method}"


@dataclass
class SweepConfig:
    """Everything a point needs besides (array, sparsity); picklable (sent to worker processes / Ray tasks)."""

    eval_dir: Path
    out: Path
    export: ExportConfig = field(default_factory=ExportConfig)  # calibration folders and pruning settings; each
    # point sets tile, sparsity, method and the calibration files (export_config)
    boards: Tuple[str, ...] = ("pynq-z2",)
    limit: Optional[int] = None
    packages: Optional[Path] = None  # default OUT/packages
    trim: bool = False  # True: encoder window trimmed to the audio (asr_demo's default; greedy decoding then
    # often repeats the sentence until the token limit on short clips, so WER uses the full 30-s window)
    attention_on_accel: bool = True
    wer_budget: float = WER_BUDGET
    progress: bool = True  # per-utterance bar inside a point (only when points run in this process)
    distill: Optional[dict] = None  # model.distill.DistillConfig fields: pruned packages are distilled on calib

    @property
    def package_dir(self) -> Path:
        return Path(self.packages) if self.packages else Path(self.out) / "packages"

    def calib_files(self) -> List[Path]:
        return list_audio_files(*self.export.calib) if self.export.calib else []

    def tile_files(self) -> List[Path]:
        """The audio whose statistics choose a pruned point's tiles besides the calibration files: without --calib
        the bundled sets (``ExportConfig.tile_audio`` of a point pruned on statistics), else none."""
        audio = replace(self.export, sparsity=0.2, method="act-ls").tile_audio
        return list_audio_files(*audio) if audio else []

    def export_config(self, point: Point) -> ExportConfig:
        """The package export of ``point`` (calibrated on the --calib files; dense points need none)."""
        calib = tuple(self.calib_files()) if not point.dense else ()
        tile = (point.array, point.array)
        return replace(self.export, tile=tile, sparsity=point.sparsity, method=point.method, calib=calib)

    def pruning_ident(self) -> dict:
        """The pruning settings that fingerprints and package names depend on (the pattern only when it is not
        the default, sequential pruning and held-out sensitivity only when on: names from before stay valid; the
        bundled statistics set's files when the tiles are chosen on it)."""
        e = self.export
        pattern = {} if e.pattern == ExportConfig.pattern else {"pattern": e.pattern}
        tiles = [(f.name, f.stat().st_size) for f in self.tile_files()]  # the default's statistics set (session 38)
        return {
            "uniform": e.uniform,
            "prunable": e.prunable,
            "damp": e.damp,
            "model": e.model,
            **pattern,
            **e.opt_in(),
            **({"tiles": tiles} if tiles else {}),
        }

    def fingerprint(self) -> str:
        """What a point's result depends on besides the point itself (boards excluded: modeled afterwards)."""
        utts = read_librispeech(self.eval_dir, self.limit)
        ident = {
            "schema": SCHEMA,
            "eval": [(u.utt_id, u.path.stat().st_size) for u in utts],
            "calib": [(f.name, f.stat().st_size) for f in self.calib_files()],
            **self.pruning_ident(),
            "trim": self.trim,
            "attention_on_accel": self.attention_on_accel,
            "distill": self.distill,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------------------------- one point


@lru_cache(maxsize=2)
def _weights(model: Optional[str]):
    from model.load import load_whisper

    return load_whisper(model)


def package_path(point: Point, cfg: SweepConfig) -> Path:
    """Cached package of a point; pruned ones are keyed by what the pruning depends on (calibration included)."""
    ident = {"model": cfg.export.model}
    if not point.dense:
        ident.update(
            cfg.pruning_ident(),
            calib=[(f.name, f.stat().st_size) for f in cfg.calib_files()],
            distill=cfg.distill,
        )
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    uniform = "-uniform" if cfg.export.uniform else ""
    tag = "dense" if point.dense else f"{point.method}-s{point.sparsity:.2f}{uniform}"
    tag += "-distill" if cfg.distill and not point.dense else ""
    return cfg.package_dir / f"whisper-tiny.en-{point.array}x{point.array}-{tag}-{h}.sasp"


def ensure_package(point: Point, cfg: SweepConfig) -> Tuple[Path, bool]:
    """``(path, exported now?)``: export the point's package unless it is already in the package cache."""
    path = package_path(point, cfg)
    if path.exists():
        return path, False
    from model.export import export_distilled, export_package

    if cfg.distill and not point.dense:
        from model.distill import DistillConfig

        weights, export = _weights(cfg.export.model), cfg.export_config(point)
        export_distilled(path, weights, export, cfg.export.calib, DistillConfig(**cfg.distill))
    else:
        export_package(path, _weights(cfg.export.model), cfg.export_config(point))
    return path, True


def utterance_model(calls: Sequence[GemmCall], ops: HostOps, board: str, array: int) -> dict:
    """Modeled latency/energy of one utterance on ``board``, and of the same calls with every tile present
    (``host.session.BoardFigures``, as the demo)."""
    fig = BoardFigures(list(calls), ops, board, array)
    return {
        "latency_s": fig.pruned["total_s"],
        "dense_same_calls_s": fig.dense["total_s"],
        "energy_j": fig.energy["joules"],
        "dense_same_calls_j": fig.dense_energy["joules"],
    }


def utterance_extra(record: Record, boards: Sequence[str], array: int) -> dict:
    """An utterance row's recorded work: decoded tokens of every model run (a looped trimmed window's both, and
    sampled decodes), encoder positions of the kept runs, and the modeled figures of its calls and host work on
    each board."""
    return {
        "tokens": sum(tokens for w in record.windows for _, tokens in w.runs + w.samples),
        "encoder_positions": sum(record.positions),
        "modeled": {b: utterance_model(record.calls, record.ops, b, array) for b in boards},
    }


def encode_calls(calls: Counter) -> dict:
    """Compact JSON form of the recorded calls: unique tile-count vectors once, then (call, count) rows."""
    nnz_index: Dict[Tuple[int, ...], int] = {}
    rows = []
    for c, count in sorted(calls.items(), key=lambda kv: (kv[0].stage, kv[0].layer, kv[0].m, kv[0].k, kv[0].n)):
        idx = nnz_index.setdefault(c.nnz, len(nnz_index))
        rows.append([c.stage, c.layer, c.m, c.k, c.n, idx, count])
    return {"nnz": [list(t) for t in nnz_index], "calls": rows}


def decode_calls(data: dict) -> List[Tuple[GemmCall, int]]:
    nnz = [tuple(t) for t in data["nnz"]]
    return [(GemmCall(s, layer, m, k, n, nnz[i]), cnt) for s, layer, m, k, n, i, cnt in data["calls"]]


def _expand(calls: Iterable[Tuple[GemmCall, int]]) -> Iterator[GemmCall]:
    for c, count in calls:
        for _ in range(count):
            yield c


def board_model(result: dict, board: str) -> dict:
    """Mean modeled latency/energy per utterance on ``board`` from a point's recorded calls (no re-evaluation)."""
    array = result["array"]
    n = max(result["eval"]["utterances"], 1)
    fig = BoardFigures(list(_expand(decode_calls(result["calls"]))), result["host_ops"], board, array)
    lat, dense = fig.pruned, fig.dense
    cyc = [sum(st["cycles"] for st in d["stages"].values()) for d in (dense, lat)]
    accel = sum(st["accel_s"] for st in lat["stages"].values())
    return {
        "board": resolve_board(board),
        "latency_s": figure(lat["total_s"] / n, "s", "modeled", "mean per utterance"),
        "stages_s": {s: figure(lat["stages"][s]["total_s"] / n, "s", "modeled") for s in STAGES},
        "accelerator_share": figure(accel / lat["total_s"], "fraction", "modeled"),
        "dense_same_calls_s": figure(dense["total_s"] / n, "s", "modeled", "same calls, every tile present"),
        "speedup_same_calls": figure(dense["total_s"] / lat["total_s"], "x", "modeled"),
        "kernel_cycle_speedup": figure(cyc[0] / cyc[1], "x", "modeled"),
        "pruning_ceiling": figure(fig.max_speedup, "x", "modeled", "same calls with every prunable tile removed"),
        "energy_j": figure(fig.energy["joules"] / n, "J", "modeled", "mean per utterance"),
        "dense_same_calls_j": figure(fig.dense_energy["joules"] / n, "J", "modeled"),
        "assumptions": lat["assumptions"] + fig.energy["assumptions"],
    }


def run_point(point: Point, cfg: SweepConfig) -> dict:
    """Export (or reuse) the point's package, evaluate it, model it on every board. Returns the point's record."""
    from host.driver import Accelerator
    from host.package import load_package
    from host.whisper import WhisperRuntime
    from model.evaluate import evaluate

    t0, c0 = time.perf_counter(), time.process_time()
    path, exported = ensure_package(point, cfg)
    c1 = time.process_time()
    pkg = load_package(path, expect_tile=(point.array, point.array))
    calls: Counter = Counter()
    ops: HostOps = {}
    extras: Dict[str, dict] = {}

    def on_record(u: Utterance, record: Record) -> None:
        calls.update(record.calls)
        add_ops(ops, record.ops)
        extras[u.utt_id] = utterance_extra(record, cfg.boards, point.array)

    acc = Accelerator(pkg, "reference")
    try:
        rt = WhisperRuntime(pkg.weights, acc, offload_attention=cfg.attention_on_accel)
        utts = read_librispeech(cfg.eval_dir, cfg.limit)
        res = evaluate(rt, utts, progress=cfg.progress, trim=cfg.trim, on_record=on_record)
    finally:
        acc.close()
    c2 = time.process_time()
    meta = pkg.metadata
    layers = meta.get("layers", {})
    kept = sum(v["tiles_kept"] for v in layers.values())
    total = sum(v["tiles_total"] for v in layers.values())
    rows = []
    for row in res.rows:
        row = {k: v for k, v in row.items() if k != "wall_s"}  # wall time of this host: not a board figure
        rows.append({**row, **extras[row["utt_id"]]})
    result = {
        "schema": SCHEMA,
        "key": point.key,
        "fingerprint": cfg.fingerprint(),
        "array": point.array,
        "target_sparsity": point.sparsity,
        "method": meta.get("method"),
        "allocation": meta.get("allocation"),
        "package": {"path": str(path), "tile": list(pkg.tile), "layers": layers},
        "mac_sparsity": figure(float(meta.get("mac_sparsity", 0.0)), "fraction", "counted", "of prunable MACs"),
        "tiles_kept": figure(kept / total if total else 1.0, "fraction", "counted", "over every GEMM layer"),
        "wer": figure(res.wer, "fraction", "measured (jiwer)", "int8 reference path, this host"),
        "eval": {
            "dir": str(cfg.eval_dir),
            "utterances": res.utterances,
            "audio_s": figure(res.audio_seconds, "s", "counted"),
        },
        "calibration": {
            "dirs": [str(p) for p in cfg.export.calib],
            "files": len(cfg.calib_files()) if not point.dense else 0,
        },
        "utterance_rows": rows,
        "calls": encode_calls(calls),
        "host_ops": ops,
        "cost": {
            "exported": exported,
            "export_cpu_s": round(c1 - c0, 2),
            "eval_cpu_s": round(c2 - c1, 2),
            "wall_s": round(time.perf_counter() - t0, 2),
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        },
    }
    result["modeled"] = {b: board_model(result, b) for b in cfg.boards}
    return result


# ----------------------------------------------------------------------------------------------- the grid


@dataclass
class SweepResult:
    points: Dict[str, dict]
    rows: List[dict]
    summary: dict
    computed: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    files: Dict[str, Path] = field(default_factory=dict)


def grid(arrays: Sequence[int], sparsities: Sequence[float], method: str) -> List[Point]:
    """Every (array, sparsity) point, the dense point of each array included (the speedup's reference)."""
    pts = []
    for a in arrays:
        for s in sorted(set([0.0] + [round(float(s), 4) for s in sparsities])):
            pts.append(Point(int(a), s, method))
    return pts


def point_file(cfg: SweepConfig, point: Point, fingerprint: str) -> Path:
    return Path(cfg.out) / "points" / f"{point.key}-{fingerprint}.json"


def check_separate(cfg: SweepConfig) -> None:
    """Calibration audio and evaluation audio must not share files."""
    if not cfg.export.calib:
        return
    ev = {u.path.resolve() for u in read_librispeech(cfg.eval_dir, cfg.limit)}
    shared = ev & {f.resolve() for f in cfg.calib_files()}
    if shared:
        raise ValueError(
            f"{len(shared)} evaluation file(s) are also calibration audio (e.g. {sorted(shared)[0]}): "
            "use separate folders for --calib and --eval"
        )


def waves(points: Sequence[Point]) -> List[List[Point]]:
    """Dense points and the first pruned point of each array first: that one computes (and caches) the array's
    sensitivity, so the other points of the array, run in parallel afterwards, reuse it instead of all redoing it."""
    first, rest, seen = [], [], set()
    for p in points:
        if p.dense or p.array not in seen:
            first.append(p)
            seen.update([] if p.dense else [p.array])
        else:
            rest.append(p)
    return [w for w in (first, rest) if w]


def warm_calibration(cfg: SweepConfig, points: Sequence[Point]) -> None:
    """Collect the calibration statistics once, before parallel points would each compute them."""
    from model.export import calibration

    pruned = [p for p in points if not p.dense]
    if cfg.export.cache_dir is not None and pruned and cfg.export.calib:
        calibration(_weights(cfg.export.model), cfg.export_config(pruned[0]))


def _run_local(todo: List[Point], cfg: SweepConfig, workers: int) -> Iterator[Tuple[Point, dict]]:
    if workers <= 1:
        for p in todo:
            yield p, run_point(p, cfg)
        return
    import concurrent.futures
    import multiprocessing

    quiet = replace(cfg, progress=False)
    ctx = multiprocessing.get_context("spawn")  # no fork after threads (tqdm, the accelerator's pool)
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for wave in waves(todo):
            futs = {pool.submit(run_point, p, quiet): p for p in wave}
            for fut in concurrent.futures.as_completed(futs):
                yield futs[fut], fut.result()


def _ray_init(address: str, workers: int):
    import ray

    if not ray.is_initialized():
        repo = str(Path(__file__).resolve().parents[1])
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}}
        if address == "local":
            ray.init(num_cpus=max(1, workers), runtime_env=env, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
    return ray


def _run_ray(todo: List[Point], cfg: SweepConfig, address: str, workers: int) -> Iterator[Tuple[Point, dict]]:
    ray = _ray_init(address, workers)
    task = ray.remote(num_cpus=1, max_retries=1)(run_point)
    quiet = replace(cfg, progress=False)
    cfg_ref = ray.put(quiet)
    for wave in waves(todo):
        refs = {task.remote(p, cfg_ref): p for p in wave}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            yield refs.pop(done[0]), ray.get(done[0])


def run_sweep(
    cfg: SweepConfig,
    points: Sequence[Point],
    workers: int = 1,
    ray_address: Optional[str] = None,
    plots: bool = True,
    plot_point: Optional[str] = None,
    report_only: bool = False,
) -> SweepResult:
    """Run (or resume) the grid, then write OUT/sweep.csv, OUT/sweep.json and the plots.

    ``report_only``: compute nothing; tables and plots of the points already finished (the rest listed as missing).
    """
    check_separate(cfg)
    fp = cfg.fingerprint()
    out = Path(cfg.out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    results: Dict[str, dict] = {}
    todo, skipped, computed = [], [], []
    for p in points:
        f = point_file(cfg, p, fp)
        if f.exists():
            results[p.key] = json.loads(f.read_text())
            skipped.append(p.key)
        else:
            todo.append(p)
    missing = [p.key for p in todo] if report_only else []
    if report_only:
        todo = []
    if todo and (workers > 1 or ray_address):
        warm_calibration(cfg, todo)
    runner = _run_ray(todo, cfg, ray_address, workers) if ray_address else _run_local(todo, cfg, workers)
    with tqdm(total=len(points), initial=len(skipped), desc="sweep", unit="point") as bar:
        for p, res in runner:
            tmp = point_file(cfg, p, fp).with_suffix(".json.tmp")
            tmp.write_text(json.dumps(res, indent=1))
            tmp.replace(point_file(cfg, p, fp))
            results[p.key] = res
            computed.append(p.key)
            bar.set_postfix_str(f"{p.key} WER {100 * res['wer']['value']:.1f}%")
            bar.update(1)
    ordered = {p.key: results[p.key] for p in points if p.key in results}
    rows = table_rows(ordered, cfg.boards, cfg.wer_budget)
    summary = summarize(ordered, rows, cfg)
    summary["missing_points"] = missing
    files = write_outputs(out, rows, summary)
    if plots:
        from model.plots import plot_all

        files.update(plot_all(summary, ordered, out / "plots", plot_point))
    return SweepResult(ordered, rows, summary, computed, skipped, files)


# ----------------------------------------------------------------------------------------------- tables


def table_rows(points: Dict[str, dict], boards: Sequence[str], wer_budget: float = WER_BUDGET) -> List[dict]:
    """One row per (board, point): every figure a ``figure()`` dict carrying its label."""
    rows = []
    for board in boards:
        # derived from the stored calls and host work with today's model, so a model change needs no re-evaluation
        models = {k: board_model(r, board) for k, r in points.items()}
        for key, r in points.items():
            dense_key = f"a{r['array']}-dense"
            d = points.get(dense_key)
            m = models[key]
            res = estimate_resources(r["array"], resolve_board(board))
            row = {
                "board": resolve_board(board),
                "array": r["array"],
                "target_sparsity": r["target_sparsity"],
                "method": r["method"],
                "allocation": r["allocation"],
                "point": key,
                "mac_sparsity": r["mac_sparsity"],
                "tiles_kept": r["tiles_kept"],
                "wer": r["wer"],
                "latency_s": m["latency_s"],
                "energy_j": m["energy_j"],
                "speedup_same_calls": m["speedup_same_calls"],
                "kernel_cycle_speedup": m["kernel_cycle_speedup"],
                "pruning_ceiling": m["pruning_ceiling"],
                "accelerator_share": m["accelerator_share"],
            }
            halves = wer_by_half(r.get("utterance_rows", []))
            for half, h in halves.items():
                lo, hi = (100 * v for v in h["interval"])
                row[f"wer_{half}"] = figure(
                    h["wer"], "fraction", "measured (jiwer)",
                    f"{half} half, {h['utterances']} utterances, 90% bootstrap interval {lo:.1f}-{hi:.1f}%",
                )  # fmt: skip
            if d is not None:
                dm = models[dense_key]
                dh = wer_by_half(d.get("utterance_rows", []))
                for half in set(halves) & set(dh):
                    row[f"wer_delta_points_{half}"] = figure(
                        100 * (halves[half]["wer"] - dh[half]["wer"]), "WER points", "measured (jiwer)",
                        f"{half} half, vs dense point",
                    )  # fmt: skip
                row["wer_delta_points"] = figure(
                    100 * (r["wer"]["value"] - d["wer"]["value"]), "WER points", "measured (jiwer)", "vs dense point"
                )
                row["speedup"] = figure(
                    dm["latency_s"]["value"] / m["latency_s"]["value"], "x", "modeled", "vs dense point, same array"
                )
                row["energy_saving"] = figure(
                    1 - m["energy_j"]["value"] / dm["energy_j"]["value"], "fraction", "modeled", "vs dense point"
                )
                row["within_budget"] = r["wer"]["value"] - d["wer"]["value"] <= wer_budget + 1e-12
            for k in ("DSP", "BRAM36", "LUT", "FF"):
                row[k] = figure(res[k], "count" if k != "BRAM36" else "BRAM36", "modeled")
            row["fits"] = {
                "value": bool(res["fits"]),
                "unit": "bool",
                "label": "modeled",
                "note": ",".join(res["over"]),
            }
            row["utterances"] = r["eval"]["utterances"]
            row["audio_s"] = r["eval"]["audio_s"]
            rows.append(row)
    return rows


def headline(rows: List[dict]) -> Dict[str, Dict[str, dict]]:
    """Per board and array: the largest sparsity whose WER is within the budget of the dense point."""
    out: Dict[str, Dict[str, dict]] = {}
    for r in rows:
        if not r.get("within_budget"):
            continue
        cur = out.setdefault(r["board"], {}).get(str(r["array"]))
        if cur is None or r["target_sparsity"] > cur["target_sparsity"]:
            out[r["board"]][str(r["array"])] = r
    return out


def summarize(points: Dict[str, dict], rows: List[dict], cfg: SweepConfig) -> dict:
    best = headline(rows)
    return {
        "schema": SCHEMA,
        "fingerprint": cfg.fingerprint(),
        "labels": {
            "measured (jiwer)": "WER of the int8 reference path on this host, scored by jiwer (normalized text)",
            "modeled": "host.system_model / host.resources formulas; assumptions listed per board",
            "counted": "counted from the package / the recorded calls",
        },
        "config": {
            "eval_dir": str(cfg.eval_dir),
            "calibration": [str(p) for p in cfg.export.calib],
            "limit": cfg.limit,
            "boards": [resolve_board(b) for b in cfg.boards],
            "uniform": cfg.export.uniform,
            "prunable": cfg.export.prunable,
            "encoder_window": "trimmed to the audio" if cfg.trim else "full 30 s",
            "attention": "accelerator" if cfg.attention_on_accel else "CPU",
            "wer_budget_points": 100 * cfg.wer_budget,
        },
        "assumptions": {b: board_model(next(iter(points.values())), b)["assumptions"] for b in cfg.boards}
        if points
        else {},
        "rows": rows,
        "headline": best,
        "cpu_s": {
            "export": round(sum(p["cost"]["export_cpu_s"] for p in points.values()), 1),
            "eval": round(sum(p["cost"]["eval_cpu_s"] for p in points.values()), 1),
        },
    }


def _flat(row: dict) -> dict:
    """CSV form: each figure becomes one column whose name carries its unit and label."""
    out = {}
    for k, v in row.items():
        if isinstance(v, dict) and "label" in v:
            out[f"{k} [{v['unit']}; {v['label']}]"] = v["value"]
        else:
            out[k] = v
    return out


def write_outputs(out: Path, rows: List[dict], summary: dict) -> Dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    flat = [_flat(r) for r in rows]
    cols: List[str] = []
    for r in flat:
        cols.extend(c for c in r if c not in cols)
    csv_path, json_path = out / "sweep.csv", out / "sweep.json"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(flat)
    json_path.write_text(json.dumps(summary, indent=1))
    return {"csv": csv_path, "json": json_path}


def format_table(rows: List[dict]) -> str:
    """Markdown table of the rows (labels in the header)."""
    head = (
        "| board | array | target | MAC sparsity (counted) | WER % (measured, jiwer) | dWER pts | "
        "dWER pts selection / report half | latency ms (modeled) | speedup (modeled) | pruning ceiling (modeled) | "
        "energy J (modeled) | fits (modeled) |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        sp = r.get("speedup", {}).get("value", float("nan"))
        dw = r.get("wer_delta_points", {}).get("value", float("nan"))
        halves = " / ".join(
            f"{r[f'wer_delta_points_{h}']['value']:+.2f}" if f"wer_delta_points_{h}" in r else "-" for h in HALVES
        )
        lines.append(
            f"| {r['board']} | {r['array']}x{r['array']} | {r['target_sparsity']:.2f} | "
            f"{r['mac_sparsity']['value']:.3f} | {100 * r['wer']['value']:.2f} | {dw:+.2f} | {halves} | "
            f"{1e3 * r['latency_s']['value']:.0f} | {sp:.3f} | {r['pruning_ceiling']['value']:.3f} | "
            f"{r['energy_j']['value']:.2f} | "
            f"{'yes' if r['fits']['value'] else 'no (' + r['fits']['note'] + ')'} |"
        )
    return "\n".join(lines)


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.sweep", description=__doc__)
    ap.add_argument("--board", nargs="+", default=["pynq-z2"], help="board(s) to model: pynq-z2, ultra96-v2")
    ap.add_argument("--arrays", type=cli.array_size, nargs="+", default=[8, 16, 32], help="array sizes, multiples of 8")
    ap.add_argument(
        "--sparsity", type=cli.sparsity, nargs="+", default=[0, 0.1, 0.2, 0.3, 0.4, 0.5], help="target MAC sparsities"
    )
    ap.add_argument("--eval", type=Path, required=True, help="LibriSpeech-layout evaluation folder (labelled)")
    ap.add_argument("--out", type=Path, default=Path("results/sweep"), help="output folder")
    ap.add_argument("--limit", type=cli.positive_int, default=None, help="evaluate only the first N utterances (by id)")
    ap.add_argument(
        "--workers", type=cli.positive_int, default=1, help="local worker processes (1 = run in this process)"
    )
    ap.add_argument("--ray", default=None, metavar="ADDRESS", help="run points as Ray tasks: ADDRESS, auto or local")
    add_export_options(ap, only=(*SHARED_OPTIONS, "permute"))
    ap.add_argument("--packages", type=Path, default=None, help="package cache (default OUT/packages)")
    ap.add_argument(
        "--trim",
        action="store_true",
        help="run the encoder on the audio's length only (asr_demo's default); default: the full 30-s window, "
        "as model.evaluate does (trimmed windows make greedy decoding repeat the sentence on short clips)",
    )
    ap.add_argument("--attention-on-host", action="store_true", help="encoder attention products on the CPU")
    ap.add_argument(
        "--wer-budget", type=cli.nonnegative_float, default=100 * WER_BUDGET, help="WER points allowed above dense"
    )
    ap.add_argument("--plot-point", default=None, help="point key for the per-layer rate plot (e.g. a8-s0.30-act-ls)")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument(
        "--report-only", action="store_true", help="compute nothing: tables and plots of the finished points only"
    )
    ap.add_argument("--distill", action="store_true", help="distill every pruned package on --calib (model.distill)")
    from model.distill import add_arguments, config_from, refuse_gradual_on_reordered

    add_arguments(ap, prefix="distill-")
    args = ap.parse_args(argv)
    try:
        export = export_config_from(args)  # ExportConfig owns which options go together (--permute's method)
    except ValueError as e:
        ap.error(str(e))
    refuse_gradual_on_reordered(ap, args)
    cfg = SweepConfig(
        eval_dir=args.eval,
        out=args.out,
        export=export,
        boards=tuple(resolve_board(b) for b in args.board),
        limit=args.limit,
        packages=args.packages,
        trim=args.trim,
        attention_on_accel=not args.attention_on_host,
        wer_budget=args.wer_budget / 100,
        progress=args.workers <= 1 and not args.ray,
        distill=asdict(config_from(args, "distill-")) if args.distill else None,
    )
    try:
        res = run_sweep(
            cfg,
            grid(args.arrays, args.sparsity, args.method),
            args.workers,
            args.ray,
            not args.no_plots,
            args.plot_point,
            args.report_only,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(res.rows))
    print(f"\nbest point per array (largest sparsity within +{args.wer_budget:.1f} WER points of dense):")
    best_rows = [r for b in res.summary["headline"].values() for r in b.values()]
    print(format_table(best_rows))
    if res.summary["missing_points"]:
        print(f"\nnot computed (--report-only): {', '.join(res.summary['missing_points'])}")
    print(
        f"\n{len(res.computed)} point(s) computed, {len(res.skipped)} reused; CPU s of the points: "
        f"{res.summary['cpu_s']}; wrote {', '.join(str(p) for p in res.files.values())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
