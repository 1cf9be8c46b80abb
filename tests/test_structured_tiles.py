"""Structure-following tile patterns (``--pattern ffn|units``): whole FFN neurons and attention heads go in
tile-aligned runs; ``free`` stays exactly what it was."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import make_tiny_whisper, random_stats

from host.package import counted_mac_sparsity, load_package
from host.whisper import gemm_operands
from host.whisper_layers import LOGITS_LAYER
from model.export import export_package, layer_macs, model_units, prune_weights
from model.pipeline import ExportConfig
from model.prune import (
    UnitGroup,
    apply_mask,
    output_error,
    prune_layer,
    prune_units,
    round_units,
    unit_span,
)

TILE = (4, 4)
D = 32  # model width: 2 heads of 16 dimensions (4 column blocks each), FFN of 128 neurons (32 runs of 4)


@pytest.fixture(scope="module")
def model():
    return make_tiny_whisper(d=D, seed=3)


@pytest.fixture(scope="module")
def stats(model):
    """Gram matrices of correlated random inputs for every GEMM layer (no audio needed)."""
    return random_stats(model, seed=0)


def prunable(model) -> list:
    return [n for n in gemm_operands(model) if n != LOGITS_LAYER]


def column_blocks_dropped(keep: np.ndarray) -> np.ndarray:
    """Column blocks with no kept tile; asserts every other column block is whole."""
    dropped = ~keep.any(axis=0)
    assert np.all(keep[:, ~dropped]), "a column block is only partly pruned"
    return dropped


def row_blocks_dropped(keep: np.ndarray) -> np.ndarray:
    return column_blocks_dropped(keep.T)


@pytest.mark.parametrize("method,tile", [("magnitude", TILE), ("act-ls", TILE), ("act-ls", (8, 4))])
def test_fc1_column_block_is_pruned_iff_fc2_row_block_is(model, stats, method, tile):
    rates = {n: 0.3 for n in prunable(model)}
    w, keeps = prune_weights(model, tile, rates, method, stats, pattern="units")
    for side in ("encoder", "decoder"):
        fc1, fc2 = f"{side}.blocks.0.mlp.0", f"{side}.blocks.0.mlp.2"
        cols = np.repeat(column_blocks_dropped(keeps[fc1]), tile[1])  # per neuron
        rows = np.repeat(row_blocks_dropped(keeps[fc2]), tile[0])
        np.testing.assert_array_equal(cols, rows)
        runs = len(cols) // max(tile)
        assert abs(cols.sum() / max(tile) - 0.3 * runs) < 1  # the floor or the ceiling of the pair's share
        assert np.all(w[fc1][:, cols] == 0) and np.all(w[fc2][rows] == 0)


def test_heads_agree_across_qkv_columns_and_out_rows(model, stats):
    rates = {n: 0.5 for n in prunable(model)}  # one of the two heads of every attention
    _, keeps = prune_weights(model, TILE, rates, "act-ls", stats, pattern="units")
    per_head = unit_span(D // 2, TILE) // TILE[1]
    for base in ("encoder.blocks.0.attn", "decoder.blocks.0.attn", "decoder.blocks.0.cross_attn"):
        out = row_blocks_dropped(keeps[f"{base}.out"])
        assert out.sum() == per_head and out.reshape(2, per_head).all(axis=1).any()  # exactly one whole head
        for proj in ("query", "key", "value"):
            np.testing.assert_array_equal(column_blocks_dropped(keeps[f"{base}.{proj}"]), out)
    assert (~keeps["encoder.conv2"]).sum() == round(0.5 * keeps["encoder.conv2"].size)  # convolutions: free tiles


def test_ffn_pattern_leaves_attention_free(model, stats):
    rates = {n: 0.3 for n in prunable(model)}
    free_w, free_k = prune_weights(model, TILE, rates, "act-ls", stats)
    w, keeps = prune_weights(model, TILE, rates, "act-ls", stats, pattern="ffn")
    for name in free_w:
        if ".mlp." not in name:
            np.testing.assert_array_equal(keeps[name], free_k[name])
            np.testing.assert_array_equal(w[name], free_w[name])


def test_heads_too_coarse_for_the_rate_stay_dense(model, stats):
    """An attention asked for less than half a head (0.4 of one) loses none: its layers are left untouched."""
    rates = {n: 0.2 if ".blocks.0.attn." in n and n.startswith("encoder.") else 0.0 for n in prunable(model)}
    w, keeps = prune_weights(model, TILE, rates, "act-ls", stats, pattern="units")
    ops = gemm_operands(model)
    for proj in ("query", "key", "value", "out"):
        name = f"encoder.blocks.0.attn.{proj}"
        assert keeps[name].all()
        np.testing.assert_array_equal(w[name], ops[name][0])


def test_counted_sparsity_is_within_one_unit_of_the_target(model, tmp_path):
    cfg = ExportConfig(TILE, 0.3, "magnitude", uniform=True, pattern="units", cache_dir=None)
    path = export_package(tmp_path / "units.sasp", model, cfg)
    pkg = load_package(path, expect_tile=TILE)  # the full validation, tile counts against the metadata
    meta = pkg.metadata
    assert meta["pattern"] == "units"
    names, ops = prunable(model), gemm_operands(model)
    macs = layer_macs(ops, names)
    tiles = {n: (i["k"], i["n"], i["tiles_kept"], i["tiles_total"]) for n, i in meta["layers"].items()}
    assert meta["mac_sparsity"] == pytest.approx(counted_mac_sparsity(tiles))
    largest = 0.0
    for g in model_units(names, "units", model.config):  # each group: floor or ceiling of its share in units
        runs = ops[g.row_layers[0]][0].shape[0] // unit_span(g.width, TILE)
        group_macs = sum(macs[n] for n in g.layers)
        share = sum(macs[n] * (1 - tiles[n][2] / tiles[n][3]) for n in g.layers) / group_macs
        assert abs(share - 0.3) * runs < 1
        largest = max(largest, group_macs / runs)
    assert abs(meta["mac_sparsity"] - 0.3) <= largest / sum(macs.values())  # within one unit overall


def test_free_pattern_is_the_per_layer_pruning(model, stats, tmp_path):
    """``free`` (the default) prunes every layer alone with ``prune_layer``, as before the patterns existed."""
    rates = {n: 0.1 * (i % 6) for i, n in enumerate(prunable(model))}
    w, keeps = prune_weights(model, TILE, rates, "act-ls", stats)
    for name, (w0, _) in gemm_operands(model).items():
        rate = rates.get(name, 0.0)
        if rate > 0:
            ref = prune_layer(w0, TILE, rate, "act-ls", stats.gram[name])
            np.testing.assert_array_equal(w[name], ref.weight)
            np.testing.assert_array_equal(keeps[name], ref.keep)
        else:
            np.testing.assert_array_equal(w[name], w0)
            assert keeps[name].all()
    cfg = ExportConfig(TILE, 0.3, "magnitude", uniform=True, cache_dir=None)
    default = export_package(tmp_path / "a.sasp", model, cfg)
    free = export_package(tmp_path / "b.sasp", model, replace(cfg, pattern="free"))
    assert default.read_bytes() == free.read_bytes()
    assert "pattern" not in load_package(default).metadata


def test_unit_compensation_lowers_the_output_error():
    """act-ls re-solves fc2 over the kept neurons: lower output error on held-out inputs than the plain mask."""
    rng = np.random.default_rng(1)
    mix = rng.standard_normal((64, 64)) * (rng.random(64) ** 3)[:, None]
    x = rng.standard_normal((4000, 64)) @ mix
    calib, held = x[:2000].T @ x[:2000], x[2000:].T @ x[2000:]
    weights = {"fc1": rng.standard_normal((16, 64)).astype(np.float32), "fc2": rng.standard_normal((64, 16))}
    group = UnitGroup(("fc1",), ("fc2",), 1)
    res = prune_units(group, weights, (8, 8), 3, "act-ls", {"fc2": calib})
    dropped = row_blocks_dropped(res["fc2"].keep)
    assert dropped.sum() == 3
    plain = apply_mask(weights["fc2"], res["fc2"].keep, (8, 8))
    assert output_error(weights["fc2"], res["fc2"].weight, held) < 0.7 * output_error(weights["fc2"], plain, held)
    kept_fc1 = np.repeat(~dropped, 8)
    np.testing.assert_array_equal(res["fc1"].weight[:, kept_fc1], weights["fc1"][:, kept_fc1])


def test_round_units_gives_ceilings_to_the_largest_remainders():
    assert round_units([2.6, 0.4, 1.7, 0.0], [1.0] * 4) == [3, 0, 2, 0]
    rng = np.random.default_rng(0)
    for _ in range(200):
        unit = rng.choice([1.0, 8.0, 50.0], size=6)
        want = rng.random(6) * 5 * unit * (rng.random(6) > 0.2)
        got = np.array(round_units(want, unit))
        assert np.all(np.abs(got - want / unit) < 1) and np.all(got[want == 0] == 0)
        assert abs(got @ unit - want.sum()) <= unit.max() / 2 + 1e-9


def test_export_refuses_structured_patterns_with_gradual_distillation(tmp_path, capsys):
    """The gradual schedule re-prunes free tiles, which would undo the pattern: one error line, exit code 2."""
    from model.export import main

    argv = ["--out", str(tmp_path / "p.sasp"), "--sparsity", "0.2", "--pattern", "units"]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--distill", str(tmp_path), "--distill-schedule", "gradual"])
    assert stop.value.code == 2
    assert "--pattern" in capsys.readouterr().err
