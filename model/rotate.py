"""Function-preserving change of basis within each attention head, for tile pruning: ``python -m model.rotate``.

    python -m model.rotate --out rotated.pt
    python -m model.export --tile 16 --sparsity 0.2 --method act-ls --model rotated.pt --out t16.sasp

Within one head the model only uses the products ``W_q W_k^T`` (every logit ``q k^T``) and ``W_v W_o`` (the
head's share of the output projection), so ``W_q -> W_q M``, ``W_k -> W_k M^-T`` (biases with them) and
``W_v -> W_v N``, ``W_o -> N^-1 W_o`` compute the same function for any invertible ``M``, ``N`` of the head's
width. :func:`head_basis` picks the basis in which the head's product, weighted by the inputs' statistics
(``||L_a^T A B^T L_b||`` with ``G = L L^T`` each side's Gram matrix of input rows), is diagonal and sorted: the weighted
SVD of the pair. Its first dims carry most of the logits (or of the head's output) and the last ones little, in
the query and the key columns alike (each dim's weighted column norm is ``sqrt(s_i)`` on both sides), so a tile
of trailing dims is pruned at the cost of a truncated SVD rather than of scattered weights; which tiles go is
still the exporter's choice (``--method``). :func:`permute_for_tiles` (``--permute``) only reorders dims; this
generalizes it to any basis of the head for the attention groups (the FFN's units, behind a nonlinearity, can
only be reordered).

The reference for the weighted pair SVD: the low-rank factorization of the attention's bilinear form, as in
"Eigen Attention" (Saxena et al., 2024) and SVD-based compression of the query/key product; here it only sorts
the basis for array-shaped tile pruning. The output side of ``W_v W_o`` is not weighted (the residual stream).

The command writes the rotated model as an openai-whisper checkpoint: the exporter prunes it like any model
(``--model``; its rates then come from the rotated model's own sensitivity analysis) and ``model.distill`` takes
it as the teacher (``--model``; a package records the digest of the weights it was pruned from, and distillation
refuses another teacher). The statistics are the inputs' Gram matrices on unlabelled audio (default: the bundled
calibration and statistics sets, as the exporter's tiles use), cached as the exporter caches them (the same file:
after a default export of the same weights the command reads them instead of running the audio again).
Measured: docs/pruning-log.md, "Rotated heads".
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from host import cli
from host.audio import DEFAULT_TILE_AUDIO
from host.dataset import list_audio_files
from host.package import atomic_path
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats
from model.permute import PermGroup, perm_groups
from model.pipeline import add_export_options, export_config_from

DAMP = 1e-2  # ridge on each Gram matrix, fraction of its mean diagonal (outlier dims make it ill-conditioned)


def rotation_record() -> Dict[str, float]:
    """The rotation :func:`rotate_heads` makes, as a rotated checkpoint records it (``rotation``, besides its
    number of audio files)."""
    return {"damp": DAMP}


def attention_groups(config: Dict[str, int]) -> List[PermGroup]:
    """The query/key and value/out groups of every attention (``model.permute.perm_groups`` without the FFN's):
    ``members`` = ``((first, "out"), (second, "out" for a key, "in" for the out-projection))``, ``segment`` = the
    head's width."""
    return [g for g in perm_groups(config) if ".mlp." not in g.members[0][0]]


def _chol(gram: np.ndarray, rows: int) -> np.ndarray:
    g = gram / max(rows, 1)
    g = g + DAMP * float(np.mean(np.diag(g))) * np.eye(len(g))
    return np.linalg.cholesky(g)


def head_basis(a: np.ndarray, b: np.ndarray, la: Optional[np.ndarray], lb: Optional[np.ndarray]) -> Tuple:
    """``(M, M^-T, s)`` for one head: ``a`` [K, h] and ``b`` [K', h] whose product ``a b^T`` the head computes;
    ``la`` / ``lb`` the Cholesky factors of their inputs' Gram matrices (``None``: unweighted). ``a M`` and
    ``b M^-T`` have orthogonal weighted columns of norm ``sqrt(s_i)``, ``s`` descending."""
    _, ra = np.linalg.qr(a if la is None else la.T @ a)
    _, rb = np.linalg.qr(b if lb is None else lb.T @ b)
    u, s, _ = np.linalg.svd(ra @ rb.T)
    root = np.sqrt(np.maximum(s, 1e-30))
    m = np.linalg.solve(ra, u * root)
    m_inv_t = ra.T @ (u / root)
    return m, m_inv_t, s


def rotate_heads(weights: WhisperWeights, stats: CalibStats) -> Tuple[WhisperWeights, Dict[str, list]]:
    """``(weights, spectra)``: every attention head's query/key and value/out pair in its :func:`head_basis`
    (the same function, float64 then float32); ``spectra[first layer]`` = each head's ``s`` (descending)."""
    params, spectra = dict(weights.params), {}
    for group in attention_groups(weights.config):
        (first, _), (second, axis) = group.members
        kind, width = ("qk" if axis == "out" else "vo"), group.segment
        w1 = params[f"{first}.weight"].astype(np.float64).T  # [K, N]
        w2 = params[f"{second}.weight"].astype(np.float64)  # qk: key [N, K']; vo: out [N_out, N] in torch layout
        b1 = params[f"{first}.bias"].astype(np.float64)
        la = _chol(stats.gram[first], stats.rows[first])
        lb = _chol(stats.gram[second], stats.rows[second]) if kind == "qk" else None
        new1, new2, newb1, s_all = w1.copy(), w2.copy(), b1.copy(), []
        newb2 = params[f"{second}.bias"].astype(np.float64).copy()
        for h in range(w1.shape[1] // width):
            cols = slice(h * width, (h + 1) * width)
            a = w1[:, cols]
            b = w2[cols].T if kind == "qk" else w2[:, cols]  # [K', h]: key columns / out's input rows as columns
            m, m_inv_t, s = head_basis(a, b, la, lb)
            new1[:, cols], newb1[cols] = a @ m, b1[cols] @ m
            if kind == "qk":
                new2[cols] = (b @ m_inv_t).T
                newb2[cols] = newb2[cols] @ m_inv_t
            else:
                new2[:, cols] = b @ m_inv_t
            s_all.append(s.tolist())
        params[f"{first}.weight"] = np.ascontiguousarray(new1.T).astype(np.float32)
        params[f"{first}.bias"] = newb1.astype(np.float32)
        params[f"{second}.weight"] = new2.astype(np.float32)
        params[f"{second}.bias"] = newb2.astype(np.float32)
        spectra[first] = s_all
    return replace(weights, params=params), spectra


def energy_dims(spectrum: List[float], share: float = 0.9) -> int:
    """How many of a head's leading dims carry ``share`` of its product's squared Frobenius norm."""
    e = np.cumsum(np.square(spectrum))
    return int(np.searchsorted(e, share * e[-1]) + 1)


def save_checkpoint(weights: WhisperWeights, out: Path, files: int) -> None:
    """``weights`` as an openai-whisper checkpoint (float32; ``model.load`` reads it back), written atomically and
    through a file object, so that its bytes do not depend on its name (``torch.save`` to a path names the archive's
    folder after the file, here a temporary one): the same weights give the same file, and the same digest in the
    names of packages pruned from it."""
    import torch

    ckpt = {
        "dims": dict(weights.config),
        "model_state_dict": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.params.items()},
        "rotation": {"audio_files": files, **rotation_record()},
    }
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        torch.save(ckpt, f)


@cli.entry_point
def main(argv: Optional[List[str]] = None) -> int:
    ap = cli.Parser(prog="python -m model.rotate", description=__doc__)
    ap.add_argument("--out", type=Path, required=True, help="rotated model, an openai-whisper checkpoint (.pt)")
    ap.add_argument(
        "--audio",
        type=Path,
        nargs="+",
        default=list(DEFAULT_TILE_AUDIO),
        help="unlabelled audio folders whose statistics weight the basis (default: host/assets/calib and "
        "host/assets/stats)",
    )
    add_export_options(ap, only=("model", "cache_dir"))
    args = ap.parse_args(argv)
    if args.out.suffix != ".pt":
        ap.error(f"argument --out: {args.out} must end in .pt (an openai-whisper checkpoint)")
    if args.out.is_dir():
        ap.error(f"argument --out: {args.out} is a directory")
    files = list_audio_files(*args.audio)
    from model.export import audio_stats
    from model.load import load_whisper

    cfg = export_config_from(args)
    weights = load_whisper(cfg.model)
    rotated, spectra = rotate_heads(weights, audio_stats(weights, cfg, files))
    save_checkpoint(rotated, args.out, len(files))
    width = weights.config["n_audio_state"] // weights.config["n_audio_head"]
    dims = {
        kind: np.median([energy_dims(s) for n, heads in spectra.items() if n.endswith(kind) for s in heads])
        for kind in ("query", "value")
    }
    print(
        f"wrote {args.out}: the query/key and value/out pairs of {sum(len(s) for s in spectra.values()) // 2} heads "
        f"in their weighted SVD basis ({len(files)} clips' statistics); median dims of {width} for 90 % of a pair's "
        f"product: query/key {dims['query']:.0f}, value/out {dims['value']:.0f}. Prune it with python -m "
        f"model.export --model {args.out}, distill it with --model {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
