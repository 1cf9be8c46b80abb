"""Tiles whose output the model discards once a partner layer is pruned (``python -m model.export --drop-dead``).

Three pairs of Whisper's GEMMs share an inner dimension, and a dim that one side has pruned whole makes the other
side's weights for it dead, exactly:

- a key column of zeros (every row block of a column block pruned, and the key has no bias, as in Whisper) is a
  zero in that dim of every key, so ``q_d k_d = 0`` in every logit: the query's column for ``d`` does nothing;
- an out-projection row of zeros discards dim ``d`` of every head's output: the value's column for ``d`` does
  nothing;
- an fc2 row of zeros discards hidden unit ``d``: fc1's column for ``d`` does nothing.

Free tile choice prunes such whole row or column blocks now and then, and more often on weights that
``--permute`` reordered so that weak weights share tiles; the partner then keeps tiles that cost cycles and bytes
and compute nothing the model uses. With ``--drop-dead`` the exporter prunes the sources (key, out-projection,
fc2) first, then each partner with its dead tiles pruned first, at the partner's own rate: the tiles the dead ones
leave to the budget go to the partner's next-best tiles instead (if the dead tiles outnumber the rate's count, all
of them go, and the layer is pruned beyond its rate at no cost; a partner the plan leaves whole stays whole). The
other directions (a value column or an fc1 column pruned whole) leave a bias, a constant the partner would have to
absorb, and are not used.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

# source leaf -> (partner leaf, the source's axis of the shared dim: its output columns or its input rows)
PARTNERS: Dict[str, Tuple[str, str]] = {
    "attn.key": ("attn.query", "out"),
    "attn.out": ("attn.value", "in"),
    "mlp.2": ("mlp.0", "in"),
}


def partner_of(name: str) -> Optional[Tuple[str, str]]:
    """``(partner layer, axis)`` when ``name`` is a source of :data:`PARTNERS`, else ``None``."""
    for leaf, (other, axis) in PARTNERS.items():
        if name.endswith("." + leaf) or name.endswith("_" + leaf):
            return name[: -len(leaf)] + other, axis
    return None


def sources_of(names: Sequence[str]) -> Dict[str, Tuple[str, str]]:
    """``{partner: (source, axis)}`` for every source in ``names`` whose partner is in ``names`` too (``axis`` as
    :func:`partner_of`'s)."""
    found = {}
    for name in names:
        pair = partner_of(name)
        if pair is not None and pair[0] in names:
            found[pair[0]] = (name, pair[1])
    return found


def dead_tiles(
    source_keep: np.ndarray,
    source_bias: np.ndarray,
    axis: str,
    tile: Tuple[int, int],
    partner_shape: Tuple[int, int],
) -> np.ndarray:
    """The partner's tiles (``[K_blocks, N_blocks]`` bool) whose output columns lie wholly in dims the pruned
    source zeroes: its column blocks pruned whole where its bias is zero (``axis`` ``out``), or its row blocks
    pruned whole (``in``)."""
    r, c = tile
    k, n = partner_shape
    if axis == "out":
        zero = np.repeat(~source_keep.any(axis=0), c)[:n] & (source_bias == 0)
    else:
        zero = np.repeat(~source_keep.any(axis=1), r)[:n]
    if len(zero) != n:
        raise ValueError(f"the source's shared dims ({len(zero)}) are not the partner's {n} output columns")
    cols = np.concatenate([zero, np.zeros(-n % c, bool)]).reshape(-1, c).all(axis=1)  # a partial block: never
    return np.repeat(cols[None, :], -(-k // r), axis=0)
