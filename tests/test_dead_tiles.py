"""Tiles a pruned partner makes dead (``model.dead_tiles``, ``model.export --drop-dead``): exactly those whose
outputs the model discards, pruned first at the same per-layer rates; without the option nothing changes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import make_tiny_whisper, random_stats

from host.whisper import gelu, gemm_operands
from model import export
from model.dead_tiles import dead_tiles, partner_of, sources_of
from model.export import prune_weights
from model.prune import apply_mask, select_keep

TILE = (4, 4)
D = 32


@pytest.fixture(scope="module")
def model():
    """The tiny model with Whisper's key layers (no bias) and, in every source layer, one block of the shared dim
    made weak enough that tile scores prune it whole: key column block 1, out-projection and fc2 row block 2."""
    m = make_tiny_whisper(d=D, seed=5)
    p = dict(m.params)
    for name in [n for n in gemm_operands(m) if partner_of(n)]:
        w = p[f"{name}.weight"].copy()  # torch layout [N, K]
        if name.endswith("key"):
            w[4:8, :] *= 1e-4
            p[f"{name}.bias"] = np.zeros_like(p[f"{name}.bias"])
        else:
            w[:, 8:12] *= 1e-4
        p[f"{name}.weight"] = w
    return replace(m, params=p)


@pytest.fixture(scope="module")
def stats(model):
    return random_stats(model, seed=1)


def test_the_pairs_are_whispers():
    assert partner_of("encoder.blocks.0.attn.key") == ("encoder.blocks.0.attn.query", "out")
    assert partner_of("decoder.blocks.3.cross_attn.key") == ("decoder.blocks.3.cross_attn.query", "out")
    assert partner_of("decoder.blocks.1.cross_attn.out") == ("decoder.blocks.1.cross_attn.value", "in")
    assert partner_of("encoder.blocks.2.mlp.2") == ("encoder.blocks.2.mlp.0", "in")
    assert partner_of("encoder.blocks.2.mlp.0") is None and partner_of("encoder.blocks.0.attn.query") is None
    assert sources_of(["a.attn.key", "a.attn.query", "a.mlp.2"]) == {"a.attn.query": ("a.attn.key", "out")}


def test_zeroing_the_dead_tiles_changes_nothing_the_model_computes():
    """Each pair with random weights, inputs and biases and random whole blocks of the source pruned: the partner's
    dead tiles zeroed leave the attention logits, the value-out product and the FFN output as they were; a key
    with a bias in a pruned dim leaves that dim alive."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 16))
    w = {n: rng.standard_normal(s) for n, s in {"q": (16, 16), "k": (16, 16), "v": (16, 16), "o": (16, 16)}.items()}
    w1, w2 = rng.standard_normal((16, 32)), rng.standard_normal((32, 16))
    bq, bv, b1 = (rng.standard_normal(n) for n in (16, 16, 32))
    keep_k = np.ones((4, 4), bool)
    keep_k[:, [0, 2]] = False
    keep_k[1, 3] = False  # a block only partly pruned: its dims stay alive
    keep_o = np.ones((4, 4), bool)
    keep_o[1, :] = False
    keep_2 = np.ones((8, 4), bool)
    keep_2[[2, 5], :] = False
    wk, wo, w2p = apply_mask(w["k"], keep_k, TILE), apply_mask(w["o"], keep_o, TILE), apply_mask(w2, keep_2, TILE)

    dq = dead_tiles(keep_k, np.zeros(16), "out", TILE, (16, 16))
    assert dq[:, [0, 2]].all() and not dq[:, [1, 3]].any()
    q = x @ apply_mask(w["q"], ~dq, TILE) + bq
    np.testing.assert_allclose(q @ (x @ wk).T, (x @ w["q"] + bq) @ (x @ wk).T, rtol=1e-5, atol=1e-5)
    biased = np.zeros(16)
    biased[9] = 0.5  # a key bias in dim 9 (column block 2): that block's query tiles are alive
    assert dead_tiles(keep_k, biased, "out", TILE, (16, 16))[:, 0].all()
    assert not dead_tiles(keep_k, biased, "out", TILE, (16, 16))[:, 2].any()

    dv = dead_tiles(keep_o, np.zeros(16), "in", TILE, (16, 16))
    assert dv[:, 1].all() and dv.sum() == 4
    v = x @ apply_mask(w["v"], ~dv, TILE) + bv
    np.testing.assert_allclose(v @ wo, (x @ w["v"] + bv) @ wo, rtol=1e-5, atol=1e-5)

    d1 = dead_tiles(keep_2, np.zeros(16), "in", TILE, (16, 32))
    assert d1[:, [2, 5]].all() and d1.sum() == 2 * 4
    h = gelu(x @ apply_mask(w1, ~d1, TILE) + b1)
    np.testing.assert_allclose(h @ w2p, gelu(x @ w1 + b1) @ w2p, rtol=1e-5, atol=1e-5)


def test_select_keep_prunes_the_dead_tiles_first_and_all_of_them():
    scores = np.arange(16, dtype=float).reshape(4, 4)[::-1].copy()  # the lowest scores in the last row
    dead = np.zeros((4, 4), bool)
    dead[0, :2] = True  # two high-score tiles
    keep = select_keep(scores, 0.25, dead)
    assert (~keep).sum() == 4 and not keep[0, :2].any() and not keep[3, :2].any()
    dead[:2, :] = True
    assert (~select_keep(scores, 0.25, dead)).sum() == 8  # more dead tiles than the rate's count: all of them


@pytest.mark.parametrize("method", ["act-ls", "magnitude", "obs-ls"])
def test_drop_dead_prunes_the_partners_dead_tiles_first_at_the_same_rates(model, stats, method):
    """Every source prunes its weak block whole; with ``drop_dead`` each partner prunes the matching tiles and
    keeps its rate's count, and every other layer is what it was without the option."""
    ops = gemm_operands(model)
    rates = {n: 0.25 for n in ops if n.startswith(("encoder.blocks.", "decoder.blocks."))}
    plain_w, plain = prune_weights(model, TILE, rates, method, stats)
    w, keeps = prune_weights(model, TILE, rates, method, stats, drop_dead=True)
    assert list(keeps) == list(plain)  # the layers' order (the package's layout) is kept
    partners = sources_of(list(ops))
    assert len(partners) == 8  # key and out-projection of each attention (3), fc2 of each block (2)
    for name in ops:
        if name not in partners:
            np.testing.assert_array_equal(keeps[name], plain[name], err_msg=name)
            np.testing.assert_array_equal(w[name], plain_w[name], err_msg=name)
            continue
        src, axis = partners[name]
        dead = dead_tiles(keeps[src], ops[src][1], axis, TILE, ops[name][0].shape)
        assert dead.any(), f"{src}: its weak block was not pruned whole"
        assert not keeps[name][dead].any(), name
        assert (~keeps[name]).sum() == (~plain[name]).sum(), name
        assert not np.array_equal(keeps[name], plain[name]), f"{name}: nothing moved"


def test_drop_dead_is_recorded_only_when_on(model, tmp_path):
    cfg = export.ExportConfig(TILE, 0.25, "magnitude", uniform=True, cache_dir=None)
    plain = export.export_package(tmp_path / "a.sasp", model, cfg)
    dropped = export.export_package(tmp_path / "b.sasp", model, replace(cfg, drop_dead=True))
    from host.package import load_package

    assert "drop_dead" not in load_package(plain).metadata["export"]
    assert load_package(dropped).metadata["export"]["drop_dead"] is True
    with pytest.raises(ValueError, match="--drop-dead needs"):
        replace(cfg, pattern="ffn", drop_dead=True)


@pytest.mark.parametrize("extra", [["--sparsity", "0"], ["--pattern", "ffn"], ["--sequential"]])
def test_export_cli_refuses_what_drop_dead_cannot_do(tmp_path, capsys, extra):
    """One error line naming --drop-dead, exit code 2, before any work."""
    with pytest.raises(SystemExit) as stop:
        export.main(["--out", str(tmp_path / "p.sasp"), "--sparsity", "0.2", "--drop-dead", *extra])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--drop-dead" in err[0]
