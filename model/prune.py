"""SASP structured tile pruning: whole R x C tiles of ``W[K, N]`` (the systolic array's shape) are removed.

Scores (lower is pruned first):
- ``magnitude``: ``||W_tile||_F^2`` (the paper's baseline);
- ``act``: the tile's contribution to the layer output on calibration activations, ``sum_n w_n^T H_tt w_n``
  with ``H = X^T X`` and ``H_tt`` its diagonal block for the tile's input rows;
- ``obs-ls``: Optimal Brain Surgeon for tiles: in each column block, row blocks are removed one at a time, each
  time the one whose removal costs the least output error *after* the kept rows are re-solved,
  ``sum_n w_Tn^T [(H^-1)_TT]^-1 w_Tn`` (Hassibi & Stork 1993; group form as in Frantar & Alistarh, "Optimal Brain
  Compression", NeurIPS 2022); the layer's tiles are then taken cheapest first over all column blocks.
Compensation (``-ls`` methods): for each column block, the kept weights are re-solved by least squares so the
layer output on calibration activations stays close to the dense output:
``(H_SS + lambda I) W_S = H_S: W + lambda W_S`` over the kept input rows ``S`` (ridge towards the original).
Patterns: ``free`` picks any tiles of a layer; ``prune_units`` removes whole model units (FFN neurons, attention
heads) as tile-aligned runs: the unit's columns in the layers that produce it and its rows in the layer that reads it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.linalg

METHODS = ("magnitude", "magnitude-ls", "act", "act-ls", "obs-ls")
PATTERNS = ("free", "ffn", "units")
DEFAULT_DAMP = 0.01


@dataclass(frozen=True)
class PrunedLayer:
    weight: np.ndarray  # float32 [K, N], pruned tiles exactly zero
    keep: np.ndarray  # bool [K_blocks, N_blocks]


def blocks(k: int, n: int, tile: Tuple[int, int]) -> Tuple[int, int]:
    return -(-k // tile[0]), -(-n // tile[1])


def _padded(w: np.ndarray, tile: Tuple[int, int]) -> np.ndarray:
    kb, nb = blocks(*w.shape, tile)
    return np.pad(w, ((0, kb * tile[0] - w.shape[0]), (0, nb * tile[1] - w.shape[1])))


def tile_scores(w: np.ndarray, tile: Tuple[int, int], method: str, gram: Optional[np.ndarray] = None) -> np.ndarray:
    """``[K_blocks, N_blocks]`` importance of every tile of ``w[K, N]``."""
    r, c = tile
    wp = _padded(w.astype(np.float64), tile)
    kb, nb = wp.shape[0] // r, wp.shape[1] // c
    if method.startswith("magnitude"):
        return (wp**2).reshape(kb, r, nb, c).sum(axis=(1, 3))
    if gram is None:
        raise ValueError("activation-aware scores need calibration statistics")
    hp = _padded(gram, (r, r))
    scores = np.empty((kb, nb))
    for i in range(kb):
        rows = wp[i * r : (i + 1) * r]  # [r, Np]
        contrib = np.einsum("an,ab,bn->n", rows, hp[i * r : (i + 1) * r, i * r : (i + 1) * r], rows)
        scores[i] = contrib.reshape(nb, c).sum(axis=1)
    return scores


def obs_order(
    w: np.ndarray, gram: np.ndarray, tile: Tuple[int, int], damp: float = DEFAULT_DAMP, max_frac: float = 0.9
) -> Tuple[np.ndarray, np.ndarray]:
    """Greedy OBS removal in every column block of ``w[K, N]``: ``(order, cost)``, both ``[N_blocks, steps]``:
    the row block removed at each step and its cost (output error added, with the kept rows re-solved), for
    ``steps = ceil(max_frac * K_blocks)``. ``H + lambda I`` is the same ridge as :func:`compensate`, so the
    costs of a removal set sum to the objective that :func:`compensate` minimises for it.

    All column blocks run at once, in float32, on ``[N_blocks, K, K]`` copies of ``(H + lambda I)^-1``: each
    step gathers the ``R x R`` diagonal blocks, inverts them and applies the rank-``R`` downdate."""
    r, c = tile
    kb, nb = blocks(*w.shape, tile)
    k = kb * r
    lam = damp * float(np.mean(np.diag(gram))) + 1e-12
    h = np.zeros((k, k))
    h[: gram.shape[0], : gram.shape[0]] = gram
    h[np.diag_indices(k)] += lam
    hinv = np.linalg.inv(h).astype(np.float32)
    hb = np.repeat(hinv[None], nb, axis=0)  # [nb, K, K]
    wb = _padded(w.astype(np.float32), tile).reshape(k, nb, c).transpose(1, 0, 2).copy()  # [nb, K, C]
    rows = np.arange(k).reshape(kb, r)
    alive = np.ones((nb, kb), bool)
    steps = int(np.ceil(max_frac * kb))
    order, cost = np.zeros((nb, steps), int), np.zeros((nb, steps))
    at = np.arange(nb)
    eye = np.eye(r, dtype=np.float32)
    for s in range(steps):
        diag = hb[:, rows[:, :, None], rows[:, None, :]]  # [nb, kb, R, R]
        diag[~alive] = eye
        dinv = np.linalg.inv(diag)
        wg = wb[:, rows, :]  # [nb, kb, R, C]
        step_cost = np.einsum("bgrc,bgrs,bgsc->bg", wg, dinv, wg, optimize=True).astype(np.float64)
        step_cost[~alive] = np.inf
        g = np.argmin(step_cost, axis=1)
        order[:, s], cost[:, s] = g, step_cost[at, g]
        cols = np.take_along_axis(hb, rows[g][:, None, :], axis=2)  # [nb, K, R]
        m = dinv[at, g]  # [nb, R, R]
        wb -= cols @ (m @ wg[at, g])
        hb -= (cols @ m) @ cols.transpose(0, 2, 1)
        alive[at, g] = False
    return order, cost


def obs_keep(
    order: np.ndarray, cost: np.ndarray, k_blocks: int, rate: float, dead: Optional[np.ndarray] = None
) -> np.ndarray:
    """Keep mask ``[K_blocks, N_blocks]`` that prunes ``round(rate * tiles)`` tiles, the cheapest removals of
    :func:`obs_order` first over all column blocks (each block's costs made non-decreasing, so every block
    loses a prefix of its own order). ``dead`` tiles (bool ``[K_blocks, N_blocks]``, whole column blocks, as
    ``model.dead_tiles`` finds them) go first, all of them even beyond that count, as in :func:`select_keep`: the
    order's column blocks are independent, so the live blocks' orders stand as they are."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"pruning rate must be in [0, 1], got {rate}")
    nb, steps = cost.shape
    n_prune = int(round(rate * k_blocks * nb))
    keep = np.ones((k_blocks, nb), bool)
    rising = np.maximum.accumulate(cost, axis=1)
    dead = np.zeros((k_blocks, nb), bool) if dead is None else dead
    cols = dead.all(axis=0)
    if not np.array_equal(dead, np.broadcast_to(cols, dead.shape)):
        raise ValueError("OBS tile selection prunes dead tiles as whole column blocks only")
    keep[:, cols] = False
    n_prune = max(0, n_prune - int(dead.sum()))
    rising[cols] = np.inf
    if n_prune > int((~cols).sum()) * steps:
        raise ValueError(f"pruning rate {rate} is beyond the OBS order's {steps}/{k_blocks} row blocks per column")
    taken = np.bincount(np.argsort(rising, axis=None, kind="stable")[:n_prune] // steps, minlength=nb)
    for j in range(nb):
        keep[order[j, : taken[j]], j] = False
    return keep


def tile_keep(
    w: np.ndarray,
    tile: Tuple[int, int],
    rate: float,
    method: str,
    gram: Optional[np.ndarray] = None,
    damp: float = DEFAULT_DAMP,
    dead: Optional[np.ndarray] = None,
) -> np.ndarray:
    """The keep mask ``[K_blocks, N_blocks]`` of ``method`` at ``rate`` (scores, or the OBS order); ``dead`` tiles
    (``[K_blocks, N_blocks]`` bool: their outputs are discarded downstream) are pruned first."""
    if method != "obs-ls":
        return select_keep(tile_scores(w, tile, method, gram), rate, dead)
    if gram is None:
        raise ValueError("OBS tile selection needs calibration statistics")
    return obs_keep(*_obs_order_cached(w, gram, tile, damp), blocks(*w.shape, tile)[0], rate, dead)


_OBS_MEMO: Dict[bytes, Tuple[np.ndarray, np.ndarray]] = {}


def _obs_order_cached(
    w: np.ndarray, gram: np.ndarray, tile: Tuple[int, int], damp: float
) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`obs_order`, computed once per process for the same weights, statistics, tile and ridge (the
    sensitivity analysis, its end-to-end probe and the final pruning all ask for it)."""
    h = hashlib.sha256(repr((w.shape, gram.shape, tuple(tile), damp)).encode())
    h.update(np.ascontiguousarray(w).tobytes())
    h.update(np.ascontiguousarray(gram).tobytes())
    key = h.digest()
    if key not in _OBS_MEMO:
        _OBS_MEMO[key] = obs_order(w, gram, tile, damp)
    return _OBS_MEMO[key]


def select_keep(scores: np.ndarray, rate: float, dead: Optional[np.ndarray] = None) -> np.ndarray:
    """Keep mask that prunes exactly ``round(rate * tiles)`` lowest-score tiles (ties broken by position); with
    ``dead`` (bool, the shape of ``scores``) those tiles first, all of them even beyond that count."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"pruning rate must be in [0, 1], got {rate}")
    n_prune = int(round(rate * scores.size))
    if dead is not None:
        scores = np.where(dead, -np.inf, scores)
        n_prune = max(n_prune, int(dead.sum()))
    keep = np.ones(scores.size, bool)
    keep[np.argsort(scores, axis=None, kind="stable")[:n_prune]] = False
    return keep.reshape(scores.shape)


def apply_mask(w: np.ndarray, keep: np.ndarray, tile: Tuple[int, int]) -> np.ndarray:
    r, c = tile
    mask = np.repeat(np.repeat(keep, r, axis=0), c, axis=1)[: w.shape[0], : w.shape[1]]
    return np.where(mask, w, 0.0).astype(np.float32)


def compensate(
    w: np.ndarray,
    keep: np.ndarray,
    gram: np.ndarray,
    tile: Tuple[int, int],
    damp: float = DEFAULT_DAMP,
    cross: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Least-squares re-solve of the kept tiles of every column block; pruned tiles stay exactly zero.

    ``cross`` (``X_p^T X_d``, with ``gram = X_p^T X_p``) fits ``X_p W'`` to ``X_d W`` instead of ``X W``: the
    inputs the layer will see differ from those its output is matched on (``model.sequential``)."""
    r, c = tile
    k, n = w.shape
    w64 = w.astype(np.float64)
    lam = damp * float(np.mean(np.diag(gram))) + 1e-12
    out = apply_mask(w, keep, tile).astype(np.float64)
    target_all = (gram if cross is None else cross) @ w64  # [K, N]: H W (or C W)
    groups: Dict[bytes, list] = {}
    for j in range(keep.shape[1]):
        groups.setdefault(keep[:, j].tobytes(), []).append(j)
    for key, cols_blocks in groups.items():
        kept_blocks = np.frombuffer(key, dtype=bool)
        if not kept_blocks.any() or kept_blocks.all() and damp == 0 and cross is None:
            continue
        rows = np.concatenate([np.arange(i * r, min((i + 1) * r, k)) for i in np.flatnonzero(kept_blocks)])
        cols = np.concatenate([np.arange(j * c, min((j + 1) * c, n)) for j in cols_blocks])
        h_ss = gram[np.ix_(rows, rows)] + lam * np.eye(len(rows))
        rhs = target_all[np.ix_(rows, cols)] + lam * w64[np.ix_(rows, cols)]
        out[np.ix_(rows, cols)] = scipy.linalg.solve(h_ss, rhs, assume_a="pos")
    return out.astype(np.float32)


def output_error(w: np.ndarray, w_new: np.ndarray, gram: np.ndarray) -> float:
    """Relative squared output error ``||X (W - W')||^2 / ||X W||^2`` from the Gram matrix."""
    d = (w - w_new).astype(np.float64)
    w64 = w.astype(np.float64)
    num = np.einsum("kn,kl,ln->", d, gram, d)
    den = np.einsum("kn,kl,ln->", w64, gram, w64)
    return float(num / max(den, 1e-30))


def prune_layer(
    w: np.ndarray,
    tile: Tuple[int, int],
    rate: float,
    method: str = "act-ls",
    gram: Optional[np.ndarray] = None,
    damp: float = DEFAULT_DAMP,
    dead: Optional[np.ndarray] = None,
) -> PrunedLayer:
    """Prune ``rate`` of the tiles of ``w[K, N]`` with ``method`` (see module docstring), ``dead`` tiles first."""
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; choose from {METHODS}")
    keep = tile_keep(w, tile, rate, method, gram, damp, dead)
    if method.endswith("-ls") and rate > 0:
        return _compensated(w, keep, gram, tile, damp)
    return PrunedLayer(apply_mask(w, keep, tile), keep)


def _compensated(
    w: np.ndarray, keep: np.ndarray, gram: Optional[np.ndarray], tile: Tuple[int, int], damp: float
) -> PrunedLayer:
    if gram is None:
        raise ValueError("least-squares compensation needs calibration statistics")
    return PrunedLayer(compensate(w, keep, gram, tile, damp), keep)


@dataclass(frozen=True)
class UnitGroup:
    """Layers sharing one inner dimension made of units ``width`` wide: a unit is a column range of every
    ``col_layers`` weight (the layers producing it: FFN fc1, attention Q/K/V) and the same row range of every
    ``row_layers`` weight (the layers reading it: FFN fc2, attention out)."""

    col_layers: Tuple[str, ...]
    row_layers: Tuple[str, ...]
    width: int

    @property
    def layers(self) -> Tuple[str, ...]:
        return self.col_layers + self.row_layers


def unit_span(width: int, tile: Tuple[int, int]) -> int:
    """Fewest dimensions of whole units that are also whole row blocks (``R``) and column blocks (``C``)."""
    return math.lcm(width, *tile)


def prune_units(
    group: UnitGroup,
    weights: Dict[str, np.ndarray],
    tile: Tuple[int, int],
    n_prune: int,
    method: str = "act-ls",
    grams: Optional[Dict[str, np.ndarray]] = None,
    damp: float = DEFAULT_DAMP,
) -> Dict[str, PrunedLayer]:
    """Remove the ``n_prune`` least important runs of ``unit_span`` dimensions from every layer of ``group``.

    A run's score is the sum of ``method``'s tile scores over its rows in ``row_layers`` (``obs-ls`` scores runs
    as ``act`` does): its contribution to the group's output (its columns in ``col_layers`` reach the output only
    through those rows). ``-ls`` methods re-solve the ``row_layers`` over the kept rows; the kept columns of
    ``col_layers`` keep all their inputs, so they stay as they are."""
    grams = grams or {}
    span = unit_span(group.width, tile)
    r, c = tile
    starts = np.arange(0, blocks(weights[group.row_layers[0]].shape[0], 1, tile)[0], span // r)
    score = sum(
        np.add.reduceat(tile_scores(weights[n], tile, method, grams.get(n)).sum(axis=1), starts)
        for n in group.row_layers
    )
    drop = np.zeros(len(starts), bool)
    drop[np.argsort(score, kind="stable")[:n_prune]] = True
    out = {}
    for name in group.layers:
        w = weights[name]
        keep = np.ones(blocks(*w.shape, tile), bool)
        if name in group.col_layers:
            keep[:, np.repeat(drop, span // c)[: keep.shape[1]]] = False
        else:
            keep[np.repeat(drop, span // r)[: keep.shape[0]], :] = False
        if name in group.row_layers and method.endswith("-ls") and n_prune > 0:
            out[name] = _compensated(w, keep, grams.get(name), tile, damp)
        else:
            out[name] = PrunedLayer(apply_mask(w, keep, tile), keep)
    return out


def round_units(want: Sequence[float], unit: Sequence[float]) -> List[int]:
    """Whole units to prune per group, ``want[i]`` being the MACs asked of group ``i`` and ``unit[i]`` the MACs
    of one of its units: each group gets the floor or the ceiling of its share; ceilings go to the largest
    remainders first, while one more unit brings the total closer to ``sum(want)``."""
    exact = np.asarray(want, float) / np.asarray(unit, float)
    count = np.floor(exact + 1e-9).astype(int)
    short = float(np.sum(want) - np.dot(count, unit))
    rest = exact - count
    for i in np.argsort(-rest, kind="stable"):
        if rest[i] > 1e-9 and unit[i] < 2 * short:
            count[i] += 1
            short -= unit[i]
    return count.tolist()


def allocate_rates(
    errors: Dict[str, Sequence[float]],
    rates: Sequence[float],
    macs: Dict[str, float],
    target: float,
    weight: Optional[Dict[str, float]] = None,
) -> Dict[str, float]:
    """Per-layer rates reaching ``target`` sparsity of the layers' total MACs at the least summed error.

    ``errors[layer][i]`` is the (relative) output error at ``rates[i]``; greedily raise the rate of the layer
    whose next step costs the least error per pruned MAC, until the MAC target is met. ``weight`` scales each
    layer's error (its measured sensitivity).
    """
    weight = weight or {}
    total = sum(macs.values())
    level = {name: 0 for name in errors}
    pruned = 0.0
    while pruned < target * total - 1e-9:
        best, best_cost = None, np.inf
        for name, errs in errors.items():
            i = level[name]
            if i + 1 >= len(rates):
                continue
            gain = (rates[i + 1] - rates[i]) * macs[name]
            cost = weight.get(name, 1.0) * (errs[i + 1] - errs[i]) / gain
            if cost < best_cost:
                best, best_cost = name, cost
        if best is None:
            raise ValueError(f"target sparsity {target:.2f} is beyond the allowed rates {rates[-1]}")
        pruned += (rates[level[best] + 1] - rates[level[best]]) * macs[best]
        level[best] += 1
    return {name: float(rates[i]) for name, i in level.items()}
