"""SASP pruning: exact tile counts, masks, least-squares compensation, the rate allocator."""

from __future__ import annotations

import numpy as np
import pytest

from model.prune import (
    METHODS,
    allocate_rates,
    apply_mask,
    compensate,
    obs_keep,
    obs_order,
    output_error,
    prune_layer,
    select_keep,
    tile_scores,
)


@pytest.fixture()
def layer():
    """Correlated activations (calibration and held-out halves) and a weight matrix with K, N not tile multiples."""
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((100, 100)) * (rng.random(100) ** 3)[:, None]
    x = rng.standard_normal((4000, 100)) @ mix
    w = rng.standard_normal((100, 60)).astype(np.float32)
    return x[:2000], x[2000:], w


@pytest.mark.parametrize("tile", [(4, 4), (8, 8), (12, 12), (16, 16), (32, 32), (8, 16)])
@pytest.mark.parametrize("method", METHODS)
def test_prunes_exactly_the_requested_tiles(layer, tile, method):
    x, _, w = layer
    res = prune_layer(w, tile, 0.4, method, x.T @ x)
    kb, nb = -(-100 // tile[0]), -(-60 // tile[1])
    assert res.keep.shape == (kb, nb)
    assert (~res.keep).sum() == round(0.4 * kb * nb)
    mask = np.repeat(np.repeat(res.keep, tile[0], 0), tile[1], 1)[:100, :60]
    assert np.all(res.weight[~mask] == 0)  # pruned tiles are exactly zero
    if not method.endswith("-ls"):
        np.testing.assert_array_equal(res.weight[mask], w[mask])  # kept tiles untouched without compensation


def test_magnitude_prunes_the_smallest_tiles():
    w = np.ones((16, 16), np.float32)
    w[:8, :8] = 0.01
    keep = select_keep(tile_scores(w, (8, 8), "magnitude"), 0.25)
    assert not keep[0, 0] and keep.sum() == 3


def test_activation_aware_score_sees_the_inputs(layer):
    x, _, w = layer
    gram = x.T @ x
    w = np.ones_like(w)
    scores = tile_scores(w, (10, 10), "act", gram)
    energy = np.add.reduceat(np.diag(gram), np.arange(0, 100, 10))
    assert np.argmin(scores[:, 0]) == np.argmin(energy)  # rows with quiet inputs matter least


def test_compensation_lowers_output_error_on_held_out_activations(layer):
    calib, held_out, w = layer
    gram = calib.T @ calib
    keep = select_keep(tile_scores(w, (8, 8), "act", gram), 0.4)
    plain = apply_mask(w, keep, (8, 8))
    comp = compensate(w, keep, gram, (8, 8))
    held = held_out.T @ held_out
    assert output_error(w, comp, held) < 0.7 * output_error(w, plain, held)
    assert np.all(comp[apply_mask(np.ones_like(w), keep, (8, 8)) == 0] == 0)


def test_obs_costs_add_up_to_the_compensated_objective(layer):
    """Each OBS step's cost is the objective increase of removing that row block with the rest re-solved, so a
    block's removal prefix costs exactly what ``compensate`` leaves for it: (W' - W)^T (H + lambda I) (W' - W)."""
    x, _, w = layer
    gram, tile = x.T @ x, (8, 8)
    order, cost = obs_order(w, gram, tile)
    keep = obs_keep(order, cost, 13, 0.3)
    assert (~keep).sum() == round(0.3 * 13 * 8)
    d = (compensate(w, keep, gram, tile) - w).astype(np.float64)
    lam = 0.01 * np.mean(np.diag(gram))
    per_block = np.add.reduceat(np.einsum("kn,kl,ln->n", d, gram + lam * np.eye(100), d), np.arange(0, 60, 8))
    taken = (~keep).sum(axis=0)
    np.testing.assert_allclose(per_block, [cost[j, : taken[j]].sum() for j in range(8)], rtol=2e-3)


def test_obs_refuses_a_rate_beyond_its_order(layer):
    x, _, w = layer
    order, cost = obs_order(w, x.T @ x, (8, 8), max_frac=0.5)
    with pytest.raises(ValueError, match="beyond the OBS order"):
        obs_keep(order, cost, 13, 0.8)
    with pytest.raises(ValueError, match="must be in"):
        obs_keep(order, cost, 13, 1.5)


def test_obs_prunes_dead_column_blocks_first_and_the_rest_by_its_order(layer):
    """Dead tiles (whole column blocks) go first and count towards the rate; the other blocks lose the cheapest
    prefixes of their own orders, as an export of those blocks alone at the remaining count would; all dead tiles go
    even beyond the rate's count, and a dead set that is not whole column blocks is refused."""
    x, _, w = layer
    order, cost = obs_order(w, x.T @ x, (8, 8))
    dead = np.zeros((13, 8), bool)
    dead[:, [2, 5]] = True
    keep = obs_keep(order, cost, 13, 0.4, dead)
    assert (~keep).sum() == round(0.4 * 13 * 8) and not keep[:, [2, 5]].any()
    live = [0, 1, 3, 4, 6, 7]
    alone = obs_keep(order[live], cost[live], 13, (round(0.4 * 13 * 8) - 26) / (13 * 6))
    np.testing.assert_array_equal(keep[:, live], alone)
    assert (~obs_keep(order, cost, 13, 0.1, dead)).sum() == 26  # beyond the 10 tiles of the rate
    np.testing.assert_array_equal(obs_keep(order, cost, 13, 0.4, np.zeros_like(dead)), obs_keep(order, cost, 13, 0.4))
    dead[0, 0] = True
    with pytest.raises(ValueError, match="whole column blocks"):
        obs_keep(order, cost, 13, 0.4, dead)


def test_obs_drops_a_duplicated_input_that_activation_scores_keep():
    """Row blocks 0 and 1 see the same inputs: either can go at almost no cost once the other absorbs its
    weights, which only a selection that accounts for compensation sees (the activation score ranks them highest)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 16))
    x[:, 4:8] = x[:, 0:4]
    w = rng.standard_normal((16, 8)).astype(np.float32)
    w[:8] *= 10
    gram = x.T @ x
    obs, act = (prune_layer(w, (4, 4), 0.25, m, gram, damp=1e-6) for m in ("obs-ls", "act-ls"))
    assert not obs.keep[:2].all(axis=0).any()  # every column block lost row block 0 or 1
    assert act.keep[:2].all()
    assert output_error(w, obs.weight, gram) < 1e-3 * output_error(w, act.weight, gram)


def test_allocator_reaches_the_mac_target_where_it_is_cheapest():
    rates = (0.0, 0.25, 0.5, 0.75)
    errors = {"cheap": [0, 0.01, 0.02, 0.03], "costly": [0, 1.0, 2.0, 3.0]}
    macs = {"cheap": 100.0, "costly": 100.0}
    got = allocate_rates(errors, rates, macs, target=0.375)
    assert got == {"cheap": 0.75, "costly": 0.0}
    got = allocate_rates(errors, rates, macs, target=0.375, weight={"cheap": 1000.0})
    assert got["costly"] >= 0.5
    with pytest.raises(ValueError, match="beyond the allowed rates"):
        allocate_rates(errors, rates, macs, target=0.9)
