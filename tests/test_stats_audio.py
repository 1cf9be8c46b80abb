"""``--stats-audio``: the tiles are chosen and compensated on the statistics of other unlabelled audio, while the
per-layer rates still come from the calibration audio (docs/pruning.md, "The GPU recipe on LibriSpeech")."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from test_sweep import audio_whisper

from host.audio import CALIB_DIR
from host.dataset import list_audio_files
from host.package import load_package
from model.export import export_package
from model.pipeline import ExportConfig


@pytest.fixture(scope="module")
def packages(synth_set, tmp_path_factory):
    """``{name: package}`` of one 8x8 / 30 % act-ls export calibrated on the synthesized set: without the option
    (``calib``), on two bundled real-speech clips (``other``) and on the calibration audio itself (``same``)."""
    root = tmp_path_factory.mktemp("stats_audio")
    other = root / "other"
    other.mkdir()
    for f in list_audio_files(CALIB_DIR)[:2]:
        shutil.copy(f, other / f.name)
    weights = audio_whisper()
    cfg = ExportConfig(
        (8, 8), 0.3, "act-ls", calib=(synth_set,), prunable=r"^encoder\.blocks\.", cache_dir=root / "cache"
    )
    stats = {"calib": (), "other": (other,), "same": (synth_set,)}
    out = {n: export_package(root / f"{n}.sasp", weights, replace(cfg, stats_audio=a)) for n, a in stats.items()}
    return {n: load_package(p) for n, p in out.items()}, root / "cache", other


def _tiles(pkg, name):
    w = pkg.layers[name].weights
    return w.colptr.tolist(), w.kidx.tolist()


def test_rates_come_from_the_calibration_and_tiles_from_the_stats_audio(packages):
    pkgs, cache, other = packages
    calib = pkgs["calib"]
    pruned = [n for n, i in calib.metadata["layers"].items() if i["tiles_kept"] < i["tiles_total"]]
    assert pruned
    for pkg in pkgs.values():  # the same per-layer rates: the same tile count in every layer
        assert {n: i["tiles_kept"] for n, i in pkg.metadata["layers"].items()} == {
            n: i["tiles_kept"] for n, i in calib.metadata["layers"].items()
        }
        assert pkg.metadata["mac_sparsity"] == calib.metadata["mac_sparsity"]
    assert any(_tiles(pkgs["other"], n) != _tiles(calib, n) for n in pruned)  # other audio, other tiles
    for name, layer in calib.layers.items():  # the calibration audio as stats audio: the very same package
        np.testing.assert_array_equal(pkgs["same"].layers[name].dequantized(), layer.dequantized())
    # the package says how it was made; the stats audio's statistics are cached beside the calibration's (one file
    # for the calibration audio whichever role it plays)
    assert "stats_audio_files" not in calib.metadata and "stats_audio" not in calib.metadata["export"]
    meta = pkgs["other"].metadata
    assert meta["stats_audio_files"] == 2 and meta["calibration_files"] == calib.metadata["calibration_files"]
    assert meta["export"]["stats_audio"] == [str(other)] and meta["stats_audio"] == [str(other)]
    assert len(list((cache / "calib").iterdir())) == 2


def test_stats_audio_needs_a_method_that_prunes_on_statistics():
    with pytest.raises(ValueError, match="--stats-audio needs a method that prunes on statistics"):
        ExportConfig((8, 8), 0.2, "magnitude", stats_audio=("x",))
    assert ExportConfig((8, 8), 0.2, "magnitude-ls", uniform=True, stats_audio=("x",)).needs_calibration


def test_sequential_pruning_runs_the_stats_audio_itself(tmp_path, monkeypatch):
    import model.export as ex

    monkeypatch.setattr(ex, "collect_stats", lambda *a: pytest.fail("sequential pruning reads no statistics"))
    (tmp_path / "a.flac").write_bytes(b"A")
    cfg = ExportConfig((8, 8), 0.2, "act-ls", sequential=True, stats_audio=(tmp_path,), cache_dir=None)
    assert ex.tile_statistics(audio_whisper(), cfg, None, []) == (None, [tmp_path / "a.flac"])
