"""``--stats-audio``: the tiles are chosen and compensated on the statistics of other unlabelled audio, while the
per-layer rates still come from the calibration audio (docs/pruning-log.md, "The GPU recipe on LibriSpeech")."""

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


def test_without_calib_the_tiles_come_from_the_bundled_calibration_and_statistics_sets(monkeypatch):
    """The default (session 38): no ``--calib`` and no ``--stats-audio`` chooses the tiles on the bundled
    calibration set with the bundled statistics set, recorded in the package's export settings; ``--calib`` (the
    user's audio), ``--stats-audio``, magnitude scores and dense packages keep their own."""
    import model.export as ex
    from host.audio import STATS_DIR

    default = ExportConfig((8, 8), 0.2, "act-ls")
    assert default.tile_audio == (CALIB_DIR, STATS_DIR)
    assert default.opt_in()["stats_audio"] == [str(CALIB_DIR), str(STATS_DIR)]
    assert ExportConfig((8, 8), 0.2, calib=("mine",)).tile_audio == ()
    assert ExportConfig((8, 8), 0.2, stats_audio=("x",)).tile_audio == ("x",)
    assert ExportConfig((8, 8), 0.2, "magnitude").tile_audio == () == ExportConfig((8, 8), 0.0).tile_audio
    seen = {}
    monkeypatch.setattr(ex, "audio_stats", lambda w, cfg, files: seen.setdefault("files", files))
    _, files = ex.tile_statistics(audio_whisper(), default, None, [])
    assert files == seen["files"] == list_audio_files(CALIB_DIR, STATS_DIR)
    assert files[: len(list_audio_files(CALIB_DIR))] == list_audio_files(CALIB_DIR)  # the calibration set first


def test_the_demo_caches_default_packages_by_both_bundled_sets(monkeypatch, tmp_path):
    """The demo's default pruned package is named (cached) by the calibration and the statistics sets together, so
    a package built before the statistics set existed, or with it changed, is not taken for it."""
    import host.asr_demo as demo
    from host.audio import STATS_DIR

    monkeypatch.setattr(demo, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(demo, "build_package", lambda path, *a, **k: None)
    path = demo.default_package(8, 0.2, "act-ls", [])
    assert demo.calibration_tag([CALIB_DIR, STATS_DIR]) in path.name
    assert demo.calibration_tag([CALIB_DIR]) not in path.name


def test_the_bundled_statistics_set_is_whole_read_clips_with_their_licences():
    """24 whole clips (session 38: 54 read clips cut to their first 5 s chose far worse tiles), every one in the
    README's table with its licence."""
    from host.audio import STATS_DIR, load_audio

    files = list_audio_files(STATS_DIR)
    readme = (STATS_DIR / "README.md").read_text()
    assert len(files) == 24 and all(f"| {f.name} |" in readme for f in files)
    seconds = [len(load_audio(f)) / 16000 for f in files]
    assert 360 < sum(seconds) < 380 and min(seconds) > 8
    assert all(s in readme for s in ("CC BY 4.0", "public domain", "Carnegie Mellon University"))
