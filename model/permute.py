"""Function-preserving reordering of Whisper's weights before tile pruning (``python -m model.export --permute``).

Which weights share a tile is partly free to choose. Reordering the FFN's hidden units (the columns of ``mlp.0``
with the rows of ``mlp.2``), or, within one attention head, the query/key dims (one order for both: every logit
``q k^T`` is unchanged) or the value/out dims (``value`` columns with ``out`` rows) changes nothing the model
computes, but regroups the tiles. :func:`permute_for_tiles` chooses an order per group so that the weak weights
share tiles: it minimises, summed over the group's pruned layers, the share of the layer's activation-weighted
squares ``diag(X^T X)_k W_kn^2`` (the diagonal part of the ``act`` tile score) that falls in its
``round(rate x tiles)`` lowest tiles, by random swaps of two units of one segment (a head, or all hidden units),
keeping a swap only when it lowers that share by more than ``MARGIN``. The tile choice and compensation then run as
before on the reordered weights. The package records each group's order (``permutation``) and :func:`reorder`
applies it again: ``model.distill`` reorders its dense teacher the same way, so that per-dim targets line up.
Measured, cell by cell: docs/pruning-log.md, "Reordering the weights for the tiles" (session 40) and the sessions
after it.

Like the channel permutations for 2:4 sparsity (Pool and Yu, "Channel Permutations for N:M Sparsity", NeurIPS
2021), applied to array-shaped tiles. Heads' own order is not changed (it cannot regroup tiles: a head's width is a
multiple of the tile), nor the residual stream's (every layer and LayerNorm of a stack would move with it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Tuple

import numpy as np

from host.whisper import gemm_operands
from host.whisper_weights import WhisperWeights
from model.calibrate import CalibStats

SWAPS = 20_000  # proposals per group (session 40's measured packages; 8x8 / 20 %: encoder FFN 0 share 0.21 -> 0.13)
SEED = 0
# A swap is kept only when it lowers the summed share by more than this. Without it (sessions 40-54) the search kept
# swaps whose gain was rounding (at 16x16 / 25 %, 652 of 8,891 kept swaps gained at most 1.1e-16: the same lowest
# tiles summed in another order), each decided by the last bit of the calibration statistics and changing what every
# later proposal sees: statistics computed with one BLAS thread instead of two gave 14 of 17 groups another order and
# moved 14 layers' tiles. With a margin from 1e-12 to 1e-9 the orders are the same with either statistics (the next
# smallest gains kept were one between 1e-12 and 1e-9 and 33 between 1e-9 and 1e-7); docs/pruning-log.md, session 55.
MARGIN = 1e-9


def search_record() -> Dict[str, float]:
    """The search :func:`permute_for_tiles` runs by default, as a package records it (``permute_search``)."""
    return {"swaps": SWAPS, "seed": SEED, "margin": MARGIN}


@dataclass(frozen=True)
class PermGroup:
    """Layers that one reordering of ``size`` units moves together: ``(layer, axis)`` with axis ``out`` (the
    layer's output columns, with its bias) or ``in`` (its input rows); units move only within segments of
    ``segment`` (an attention head's width, or all of them)."""

    members: Tuple[Tuple[str, str], ...]
    size: int
    segment: int


def perm_groups(config: Dict[str, int]) -> List[PermGroup]:
    """Every reorderable group of Whisper's blocks: the FFN's hidden units, and per attention (self and cross)
    the query/key dims and the value/out dims, each within its heads."""
    out = []
    for side, stack in (("audio", "encoder"), ("text", "decoder")):
        state, head = config[f"n_{side}_state"], config[f"n_{side}_state"] // config[f"n_{side}_head"]
        for b in range(config[f"n_{side}_layer"]):
            p = f"{stack}.blocks.{b}"
            out.append(PermGroup(((f"{p}.mlp.0", "out"), (f"{p}.mlp.2", "in")), 4 * state, 4 * state))
            for att in ("attn", "cross_attn") if stack == "decoder" else ("attn",):
                out.append(PermGroup(((f"{p}.{att}.query", "out"), (f"{p}.{att}.key", "out")), state, head))
                out.append(PermGroup(((f"{p}.{att}.value", "out"), (f"{p}.{att}.out", "in")), state, head))
    return out


class _Member:
    """One pruned layer of a group: its units' activation-weighted squares summed per tile of the other axis."""

    def __init__(self, w: np.ndarray, gram_diag: np.ndarray, axis: str, tile: Tuple[int, int], rate: float):
        sq = gram_diag[:, None] * w.astype(np.float64) ** 2  # [K, N]
        units = sq.T if axis == "out" else sq
        self.run, other = (tile[1], tile[0]) if axis == "out" else tile  # tile size along the units, the other axis
        pad = -units.shape[1] % other
        units = np.pad(units, ((0, 0), (0, pad)))
        self.per_unit = units.reshape(units.shape[0], -1, other).sum(axis=2)  # [units, other-axis tiles]
        tiles = -(-units.shape[0] // self.run) * self.per_unit.shape[1]
        self.n_pruned = int(round(rate * tiles))
        self.total = float(units.sum()) or 1.0

    def tiles(self, order: np.ndarray) -> np.ndarray:
        return self.per_unit[order].reshape(-1, self.run, self.per_unit.shape[1]).sum(axis=1)

    def share(self, tiles: np.ndarray) -> float:
        """Share of the layer's squares in its ``n_pruned`` lowest tiles."""
        if self.n_pruned == 0:
            return 0.0
        return float(np.partition(tiles, self.n_pruned - 1, axis=None)[: self.n_pruned].sum() / self.total)


def best_order(
    members: List[_Member], group: PermGroup, swaps: int, rng: np.random.Generator
) -> Tuple[np.ndarray, float, float]:
    """``(order, share before, share after)``: unit order of ``group`` found by ``swaps`` random swaps within a
    segment, each kept only when the summed pruned share of ``members`` falls."""
    order = np.arange(group.size)
    tiles = [m.tiles(order) for m in members]
    start = cost = sum(m.share(t) for m, t in zip(members, tiles))
    for _ in range(swaps):
        base = rng.integers(group.size // group.segment) * group.segment
        a, b = base + rng.choice(group.segment, 2, replace=False)
        if all(a // m.run == b // m.run for m in members):
            continue
        moved = []
        for m, t in zip(members, tiles):
            d = m.per_unit[order[b]] - m.per_unit[order[a]]  # unit b goes to a's tile, a to b's
            t2 = t.copy()
            t2[a // m.run] += d  # (no change when both are in one tile)
            t2[b // m.run] -= d
            moved.append(t2)
        new = sum(m.share(t) for m, t in zip(members, moved))
        if new < cost - MARGIN:
            order[a], order[b] = order[b], order[a]
            cost, tiles = new, moved
    return order, start, cost


def permute_for_tiles(
    weights: WhisperWeights,
    stats: CalibStats,
    rates: Dict[str, float],
    tile: Tuple[int, int],
    swaps: int = SWAPS,
    seed: int = SEED,
) -> Tuple[WhisperWeights, CalibStats, Dict[str, List[float]], Dict[str, List[int]]]:
    """``(weights, stats, shares, orders)`` with every group that has a pruned layer (``rates``) reordered for
    ``tile`` (the inputs are not changed): the same function, the Gram matrices of reordered input rows reordered
    with them; ``shares[first layer of the group]`` = the proxy's pruned share before and after, ``orders[first
    layer]`` = the group's unit order (:func:`reorder` applies it; a package records it as ``permutation``)."""
    ops = gemm_operands(weights)
    gram, odd = dict(stats.gram), dict(stats.odd)
    rng = np.random.default_rng(seed)
    shares, orders = {}, {}
    for group in perm_groups(weights.config):
        pruned = [(n, axis) for n, axis in group.members if rates.get(n, 0.0) > 0]
        if not pruned:
            continue
        members = [_Member(ops[n][0], np.diag(stats.gram[n]), axis, tile, rates[n]) for n, axis in pruned]
        if any(group.segment % m.run for m in members):
            continue  # a tile would straddle two heads: no reorder within a head regroups it alone
        order, before, after = best_order(members, group, swaps, rng)
        shares[group.members[0][0]] = [before, after]
        orders[group.members[0][0]] = [int(i) for i in order]
        for name, axis in group.members:
            if axis == "in" and name in gram:
                gram[name] = gram[name][np.ix_(order, order)]
                odd[name] = odd[name][np.ix_(order, order)]
    return reorder(weights, orders), CalibStats(gram, dict(stats.rows), odd), shares, orders


def reorder(weights: WhisperWeights, orders: Dict[str, List[int]]) -> WhisperWeights:
    """``weights`` with each group of :func:`perm_groups` named in ``orders`` (by its first layer) reordered by
    its unit order: the same function. The teacher of a reordered package's distillation is reordered so, so that
    per-dim targets (the cross-attention keys and values) line up with the student's. ``ValueError`` for a group
    that does not exist or an order that is not a permutation within the group's segments (a damaged package)."""
    groups = {g.members[0][0]: g for g in perm_groups(weights.config)}
    params = dict(weights.params)
    for key, units in orders.items():
        group, order = groups.get(key), np.asarray(units)
        if (
            group is None
            or order.dtype.kind not in "iu"
            or not np.array_equal(np.sort(order), np.arange(group.size))
            or np.any(order // group.segment != np.arange(group.size) // group.segment)
        ):
            raise ValueError(f"unit order of {key!r} is not a reordering of that group within its heads")
        for name, axis in group.members:
            if axis == "out":
                params[f"{name}.weight"] = np.ascontiguousarray(params[f"{name}.weight"][order])
                params[f"{name}.bias"] = np.ascontiguousarray(params[f"{name}.bias"][order])
            else:
                params[f"{name}.weight"] = np.ascontiguousarray(params[f"{name}.weight"][:, order])
    return replace(weights, params=params)
