"""``--rates-from PACKAGE``: an export at another package's per-layer rates instead of its own allocation
(docs/pruning-log.md, "The default's rates for the rotated model")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import make_tiny_whisper

from host import cli
from host.cache import file_digest
from host.package import load_package
from model.export import export_package, main
from model.pipeline import ExportConfig

QK = r"\.attn\.(query|key)$"


@pytest.fixture()
def source(tmp_path):
    """A package whose rates are not uniform: 0.5 of the tiles in the self-attention's query and key, none
    elsewhere (``--prune-only``)."""
    cfg = ExportConfig((4, 4), 0.5, "magnitude", uniform=True, prune_only=QK, cache_dir=None)
    return export_package(tmp_path / "source.sasp", make_tiny_whisper(d=32, seed=3), cfg)


def test_another_models_export_at_the_packages_rates(tmp_path, source):
    other = make_tiny_whisper(d=32, seed=4)
    cfg = ExportConfig((4, 4), 0.5, "magnitude", rates_from=source, cache_dir=None)
    got = load_package(export_package(tmp_path / "got.sasp", other, cfg))
    same_rates = ExportConfig((4, 4), 0.5, "magnitude", uniform=True, prune_only=QK, cache_dir=None)
    ref = load_package(export_package(tmp_path / "ref.sasp", other, same_rates))
    theirs = load_package(source)
    for name, layer in got.layers.items():
        np.testing.assert_array_equal(layer.dequantized(), ref.layers[name].dequantized())
        assert got.metadata["layers"][name]["tiles_kept"] == theirs.metadata["layers"][name]["tiles_kept"]
    pruned = [n for n, i in got.metadata["layers"].items() if i["tiles_kept"] < i["tiles_total"]]
    assert len(pruned) == 4 and all(n.endswith((".attn.query", ".attn.key")) for n in pruned)
    assert any(not np.array_equal(got.layers[n].weights.kidx, theirs.layers[n].weights.kidx) for n in pruned)
    assert got.metadata["allocation"] == "package"
    assert got.metadata["export"]["rates_from"] == str(source) and "sensitivity" not in got.metadata["export"]
    assert got.metadata["export"]["rates_from_digest"] == file_digest(source)  # which package, wherever it lies


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tile": (8, 8)}, "the package has tile 4x4, this export 8x8"),
        ({"sparsity": 0.3}, "the package has --sparsity 0.5, this export 0.3"),
        ({"prunable": "encoder"}, "the package has --layers"),
    ],
)
def test_a_package_of_another_export_is_one_error(tmp_path, source, change, message):
    cfg = replace(ExportConfig((4, 4), 0.5, "magnitude", rates_from=source, cache_dir=None), **change)
    with pytest.raises(cli.UserError, match=message) as err:
        export_package(tmp_path / "x.sasp", make_tiny_whisper(d=32, seed=4), cfg)
    assert "\n" not in str(err.value) and not (tmp_path / "x.sasp").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--uniform"], "--rates-from: needs --sparsity > 0"),
        (["--refine", "1"], "--rates-from: needs --sparsity > 0"),
        (["--rates-from", "missing.sasp"], "--rates-from: missing.sasp is not a file"),
    ],
)
def test_cli_refuses_rates_from_with_an_allocation_or_no_file(tmp_path, capsys, source, extra, message):
    args = ["--sparsity", "0.5", "--rates-from", str(source), *extra, "--out", str(tmp_path / "x.sasp")]
    with pytest.raises(SystemExit) as err:
        main(args)
    assert err.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.sasp").exists()
    with pytest.raises(ValueError, match="--rates-from takes the rates from a package"):
        ExportConfig((8, 8), 0.2, uniform=True, rates_from=source)
