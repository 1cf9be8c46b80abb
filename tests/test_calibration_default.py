"""Pruned packages built without --calib are calibrated on the bundled real-speech set (host/assets/calib), whose
speakers are not in the genuine LibriSpeech evaluation set; packages calibrated differently are cached apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from host.audio import CALIB_DIR, load_audio
from host.dataset import list_audio_files
from model.pipeline import ExportConfig


class _Stop(Exception):
    pass


def test_bundled_set_is_real_speech_of_other_speakers():
    files = list_audio_files(CALIB_DIR)
    assert len(files) == 10
    seconds = sum(len(load_audio(f)) for f in files) / 16000
    assert 110 < seconds < 130
    speakers = {f.name.split("__")[1].split("-")[0] for f in files}
    eval_speakers = {"61", "103", "1089", "1272", "3853", "6313"}  # shared/speech/librispeech
    assert speakers and not speakers & eval_speakers
    assert "CC BY 4.0" in (CALIB_DIR / "README.md").read_text()


def test_export_without_calib_uses_the_bundled_set(monkeypatch, whisper_weights):
    import model.export as ex

    seen = {}

    def fake_stats(weights, files, prunable, cache):
        seen["files"] = list(files)
        raise _Stop

    monkeypatch.setattr(ex, "collect_stats", fake_stats)
    with pytest.raises(_Stop):
        ex.allocated_rates(whisper_weights, ExportConfig((8, 8), 0.2, "act-ls", calib=(), cache_dir=None))
    assert seen["files"] == list_audio_files(CALIB_DIR)


def test_demo_caches_packages_per_calibration_set(tmp_path):
    from host.asr_demo import calibration_tag

    other = tmp_path / "calib"
    other.mkdir()
    src = list_audio_files(CALIB_DIR)[0]
    (other / src.name).write_bytes(Path(src).read_bytes())
    assert calibration_tag([CALIB_DIR]) != calibration_tag([other])
    assert calibration_tag([CALIB_DIR]) == calibration_tag([CALIB_DIR])


def test_step_caches_follow_the_audio_not_its_path_or_time(tmp_path, whisper_weights):
    """The calibration and sensitivity caches are keyed by the files' contents in order: a copy elsewhere (a clone,
    a worktree) or a touched file hits them; other bytes or another order (other held-out folds) do not."""
    import os
    import shutil

    from model.pipeline import step_cache

    cfg = ExportConfig((8, 8), 0.2, "act-ls", cache_dir=tmp_path / "cache")
    files = list_audio_files(CALIB_DIR)[:2]
    copies = []
    for f in files:
        copies.append(tmp_path / f.name)
        shutil.copy(f, copies[-1])
        os.utime(copies[-1], (1, 1))
    for step in ("calib", "sensitivity"):
        key = step_cache(step, cfg, whisper_weights, files)
        assert step_cache(step, cfg, whisper_weights, copies) == key
        assert step_cache(step, cfg, whisper_weights, copies[::-1]) != key
    with open(copies[0], "ab") as f:
        f.write(b"\0")
    assert step_cache("calib", cfg, whisper_weights, copies) != step_cache("calib", cfg, whisper_weights, files)


def test_step_caches_follow_the_code_that_computes_them(tmp_path, whisper_weights, monkeypatch):
    """Each step's cache is keyed by its module's code (``code_tag``): a change there computes that step again and
    leaves the others' caches; each module is the one that holds what the exporter calls for the step."""
    import model.pipeline as pipeline
    from model import calibrate, search, sensitivity

    held = {"calib": calibrate.collect_stats, "sensitivity": sensitivity.layer_errors, "search": search.search_rates}
    assert {step: fn.__module__ for step, fn in held.items()} == {s: m for s, (_, _, m) in pipeline.STEPS.items()}
    cfg = ExportConfig((8, 8), 0.2, "act-ls", cache_dir=tmp_path / "cache")
    files = list_audio_files(CALIB_DIR)[:2]
    before = {step: pipeline.step_cache(step, cfg, whisper_weights, files) for step in pipeline.STEPS}
    code_tag = pipeline.code_tag
    monkeypatch.setattr(pipeline, "code_tag", lambda m: code_tag(m) + "-changed" * (m == "model.calibrate"))
    after = {step: pipeline.step_cache(step, cfg, whisper_weights, files) for step in pipeline.STEPS}
    assert [step for step in before if before[step] != after[step]] == ["calib"]


def test_the_order_of_calibration_files_does_not_follow_how_folders_are_spelled(tmp_path, monkeypatch):
    """The order makes the held-out folds (window parity): the same folders named relative or absolute, or in
    another order, give the same list."""
    import shutil

    for name in ("a", "z"):
        (tmp_path / name).mkdir()
        for i, src in enumerate(list_audio_files(CALIB_DIR)[:2]):
            shutil.copy(src, tmp_path / name / f"{i}.flac")
    monkeypatch.chdir(tmp_path / "a")
    listed = [f.resolve() for f in list_audio_files("../z", tmp_path / "a")]  # as text "../z/..." sorts first
    assert listed == [f.resolve() for f in list_audio_files(tmp_path / "z", "../a")]
    assert listed == sorted(listed) and len(listed) == 4 and listed[0].parent.name == "a"
