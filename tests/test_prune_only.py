"""``--prune-only``: a diagnostic package pruned in some layers only, at the full allocation's rates, the rest
dense (docs/pruning-log.md, "Where the 20 % loss comes from")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import make_tiny_whisper

from host import cli
from host.package import load_package
from model.export import export_package, main, only_matching
from model.pipeline import ExportConfig

QK = r"\.attn\.(query|key)$"


def test_matching_layers_are_the_full_exports_and_the_others_dense(tmp_path):
    model = make_tiny_whisper(d=32, seed=3)
    cfg = ExportConfig((4, 4), 0.4, "magnitude", uniform=True, cache_dir=None)
    full = load_package(export_package(tmp_path / "full.sasp", model, cfg))
    dense = load_package(export_package(tmp_path / "dense.sasp", model, replace(cfg, sparsity=0.0)))
    only = load_package(export_package(tmp_path / "qk.sasp", model, replace(cfg, prune_only=QK)))
    matched = [n for n in only.layers if n.endswith((".attn.query", ".attn.key"))]
    assert len(matched) == 4  # query and key of the encoder block and of the decoder's self-attention
    for name, layer in only.layers.items():
        ref = full if name in matched else dense
        np.testing.assert_array_equal(layer.dequantized(), ref.layers[name].dequantized())
        kept = only.metadata["layers"][name]["tiles_kept"]
        assert kept == ref.metadata["layers"][name]["tiles_kept"]
        assert (kept < only.metadata["layers"][name]["tiles_total"]) == (name in matched)
    assert 0 < only.metadata["mac_sparsity"] < full.metadata["mac_sparsity"]
    assert only.metadata["export"]["prune_only"] == QK and "prune_only" not in full.metadata["export"]


def test_a_regex_matching_no_pruned_layer_is_refused():
    rates = {"encoder.conv1": 0.0, "encoder.blocks.0.attn.query": 0.3}
    assert only_matching(rates, None) is rates
    assert only_matching(rates, "query") == rates
    with pytest.raises(cli.UserError, match="--prune-only 'conv1' matches no layer"):
        only_matching(rates, "conv1")  # matches, but the allocation does not prune it


@pytest.mark.parametrize("extra", [[], ["--sparsity", "0.2", "--pattern", "units"]])
def test_cli_refuses_prune_only_on_a_dense_or_structured_export(tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as err:
        main(["--prune-only", "query", *extra, "--out", str(tmp_path / "x.sasp")])
    assert err.value.code == 2
    assert "--prune-only: needs --sparsity > 0 and --pattern free" in capsys.readouterr().err
    assert not (tmp_path / "x.sasp").exists()
    with pytest.raises(ValueError, match="--prune-only needs free tiles"):
        ExportConfig((8, 8), 0.2, pattern="units", prune_only="query")
