"""Reordering the weights before tile pruning (``model.permute``, ``model.export --permute``): the same function,
the statistics reordered with the rows, a lower pruned share, the exporter's wiring, and distillation's teacher
in the package's order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import assert_same_function, make_tiny_whisper, random_stats

import model.distill as distill
import model.export as export
from host.cli import UserError
from host.package import load_package
from host.whisper import gemm_operands
from host.whisper_layers import LOGITS_LAYER
from model.calibrate import STORED_DTYPE, CalibStats
from model.permute import perm_groups, permute_for_tiles, reorder, search_record
from model.pipeline import ExportConfig

TILE = (4, 4)
D = 32  # 2 heads of 16 dims (4 tiles each), an FFN of 128 hidden units


@pytest.fixture(scope="module")
def model():
    return make_tiny_whisper(d=D, seed=5)


@pytest.fixture(scope="module")
def stats(model):
    """Gram matrices of correlated random inputs for every GEMM layer, both folds."""
    return random_stats(model, seed=1, odd_rows=2)


def rates_of(model, rate: float) -> dict:
    return {n: rate for n in gemm_operands(model) if n != LOGITS_LAYER}


def test_reordered_model_computes_the_same(whisper_weights, demo_clip):
    """Whisper tiny.en reordered for 8x8 tiles (every group, identity statistics) encodes the demo clip and scores
    every next token as the model as given, to float32 rounding."""
    ops = gemm_operands(whisper_weights)
    grams = {n: np.eye(w.shape[0]) for n, (w, _) in ops.items()}
    eye = CalibStats(grams, {n: 1 for n in ops}, {n: np.zeros_like(g) for n, g in grams.items()})
    new, _, shares, _ = permute_for_tiles(whisper_weights, eye, rates_of(whisper_weights, 0.3), (8, 8), swaps=500)
    moved = {
        k.rsplit(".", 1)[0]
        for k in whisper_weights.params
        if not np.array_equal(whisper_weights.params[k], new.params[k])
    }
    groups = perm_groups(whisper_weights.config)
    assert len(shares) == len(groups) and moved == {n for g in groups for n, _ in g.members}
    assert_same_function(whisper_weights, new, demo_clip)


def test_statistics_follow_the_reordered_rows(model, stats):
    """An ``in`` member's Gram matrix is reordered with its rows: ``tr(W^T X^T X W)`` (its output energy) and the
    split into folds are unchanged; the caller's statistics are not touched."""
    before = {n: g.copy() for n, g in stats.gram.items()}
    new, new_stats, _, orders = permute_for_tiles(model, stats, rates_of(model, 0.5), TILE, swaps=2000)
    assert all(np.array_equal(new.params[k], v) for k, v in reorder(model, orders).params.items())
    old_ops, new_ops = gemm_operands(model), gemm_operands(new)
    for name in ("encoder.blocks.0.mlp.2", "decoder.blocks.0.cross_attn.out"):
        w0, w1 = old_ops[name][0].astype(np.float64), new_ops[name][0].astype(np.float64)
        assert not np.array_equal(w0, w1)
        energy = [np.trace(w.T @ g @ w) for w, g in ((w0, stats.gram[name]), (w1, new_stats.gram[name]))]
        assert energy[1] == pytest.approx(energy[0], rel=1e-9)
        odd = [np.trace(w.T @ g @ w) for w, g in ((w0, stats.odd[name]), (w1, new_stats.odd[name]))]
        assert odd[1] == pytest.approx(odd[0], rel=1e-9)
    assert all(np.array_equal(before[n], stats.gram[n]) for n in before)


def test_the_order_does_not_follow_the_statistics_last_bit(model, stats):
    """Statistics one float32 ulp apart (another BLAS thread count rounds about half the Gram entries so) give every
    group the same order: the search keeps no swap whose gain is rounding (``MARGIN``; without it, 14 of 17 groups
    of a 16x16 / 25 % export parted)."""
    rng = np.random.default_rng(0)

    def last_bit(g: np.ndarray) -> np.ndarray:
        g32 = g.astype(STORED_DTYPE)
        return np.where(rng.random(g.shape) < 0.5, np.nextafter(g32, STORED_DTYPE(np.inf)), g32).astype(np.float64)

    stored = stats.as_stored()
    other = CalibStats({n: last_bit(g) for n, g in stored.gram.items()}, stored.rows, stored.odd)
    orders = [permute_for_tiles(model, s, rates_of(model, 0.4), TILE, swaps=5000)[3] for s in (stored, other)]
    assert orders[0].keys() == orders[1].keys() and len(orders[0]) > 0
    assert all(orders[0][g] == orders[1][g] for g in orders[0])


def test_weak_units_end_up_sharing_tiles(model, stats):
    """FFN hidden units alternating strong / weak: in the given order every tile mixes them; reordered, the weak
    ones fill whole tiles and the pruned share (half the tiles) falls to the weak units' small part."""
    params = dict(model.params)
    scale = np.where(np.arange(4 * D) % 2 == 0, 1.0, 0.01).astype(np.float32)
    params["encoder.blocks.0.mlp.0.weight"] = model.params["encoder.blocks.0.mlp.0.weight"] * scale[:, None]
    params["encoder.blocks.0.mlp.2.weight"] = model.params["encoder.blocks.0.mlp.2.weight"] * scale[None, :]
    skewed = replace(model, params=params)
    rates = {"encoder.blocks.0.mlp.0": 0.5, "encoder.blocks.0.mlp.2": 0.5}
    _, _, shares, _ = permute_for_tiles(skewed, stats, rates, TILE, swaps=5000)
    assert set(shares) == {"encoder.blocks.0.mlp.0"}  # only groups with a pruned layer
    before, after = shares["encoder.blocks.0.mlp.0"]
    assert before > 0.2 and after < 0.01


def test_export_records_the_reordering_and_refuses_what_it_cannot_do(model, stats, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "calibration", lambda weights, cfg: (stats, []))  # no audio for the tiny model
    cfg = ExportConfig(TILE, 0.3, "act-ls", calib=(tmp_path,), uniform=True, permute=True, cache_dir=None)
    meta = load_package(export.export_package(tmp_path / "p.sasp", model, cfg), expect_tile=TILE).metadata
    assert meta["export"]["permute"] is True
    assert meta["permuted_groups"] and all(after <= before for before, after in meta["permuted_groups"].values())
    assert meta["permutation"].keys() == meta["permuted_groups"].keys()
    assert meta["permute_search"] == search_record()
    plain = load_package(
        export.export_package(
            tmp_path / "q.sasp",
            model,
            ExportConfig(TILE, 0.3, "act-ls", calib=(tmp_path,), uniform=True, cache_dir=None),
        )
    )
    reordered = {"permuted_groups", "permutation", "permute_search"}
    assert "permute" not in plain.metadata["export"] and not reordered & plain.metadata.keys()
    for bad in ({"pattern": "ffn"}, {"sequential": True}, {"method": "magnitude"}):
        with pytest.raises(ValueError, match="--permute needs"):
            ExportConfig(TILE, 0.3, **{"method": "act-ls", **bad}, permute=True)


@pytest.mark.parametrize(
    "extra",
    [
        ["--pattern", "ffn"],
        ["--sequential"],
        ["--method", "magnitude"],
        ["--sparsity", "0"],
        ["--distill", ".", "--distill-schedule", "gradual"],
    ],
)
def test_export_cli_refuses_what_the_reordering_cannot_do(tmp_path, capsys, extra):
    """One error line naming --permute, exit code 2, before any work."""
    with pytest.raises(SystemExit) as stop:
        export.main(["--out", str(tmp_path / "p.sasp"), "--sparsity", "0.2", "--permute", *extra])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--permute" in err[0]


def test_a_reordered_package_is_distilled_against_the_teacher_in_its_order(model, stats, tmp_path, monkeypatch):
    """``model.distill`` reorders the dense teacher as the package records (``permutation``): the reordered
    layers' biases are the package's, and the cross-attention keys and values (the ``kv`` term's targets) line up
    with the student's dims, so the term measures the pruning, not the reordering; a reordered package without its
    orders, or with an order that leaves a head, is one ``UserError`` line."""
    monkeypatch.setattr(export, "calibration", lambda weights, cfg: (stats, []))  # no audio for the tiny model
    monkeypatch.setattr(distill, "Tokenizer", lambda vocab: None)  # the tiny model has no real vocabulary
    cfg = ExportConfig(TILE, 0.3, "act-ls", calib=(tmp_path,), uniform=True, permute=True, cache_dir=None)
    pkg = load_package(export.export_package(tmp_path / "p.sasp", model, cfg))
    teacher, student = distill.teacher_in_package_order(pkg, model), distill.sparse_model_of(pkg)
    outs = [n for g in perm_groups(model.config) for n, axis in g.members if axis == "out"]
    bias = {n: student.weights.params[f"{n}.bias"] for n in outs}
    assert all(np.array_equal(bias[n], teacher.params[f"{n}.bias"]) for n in outs)
    assert not any(np.array_equal(bias[n], model.params[f"{n}.bias"]) for n in outs)
    enc = torch.randn(1, 6, D, generator=torch.Generator().manual_seed(0))
    kv = {}
    for key, t in (("in order", teacher), ("as given", model)):
        d = distill.Distiller(t, student, [np.zeros(1600, np.float32)], distill.DistillConfig(losses=("kv",)))
        kv[key] = float(d._kv_loss(enc, enc, distill._nmse).detach())
    assert kv["in order"] < 0.5 * kv["as given"]
    orders = pkg.metadata["permutation"]
    group = next(k for k in orders if ".attn." in k)  # two heads: its first and last units are in different ones
    crossing = [orders[group][-1], *orders[group][1:-1], orders[group][0]]
    for meta, message in (
        ({k: v for k, v in pkg.metadata.items() if k != "permutation"}, "unit orders are not recorded"),
        ({**pkg.metadata, "permutation": {**orders, group: crossing}}, "damaged permutation"),
        ({**pkg.metadata, "permutation": [1, 2]}, "damaged permutation"),
    ):
        with pytest.raises(UserError, match=message) as err:
            distill.teacher_in_package_order(replace(pkg, metadata=meta), model)
        assert "\n" not in str(err.value)
