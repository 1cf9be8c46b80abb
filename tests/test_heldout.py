"""Held-out sensitivity (``--sensitivity held-out``, the default; model.sensitivity): layer errors measured on
calibration windows the compensation did not see."""

from __future__ import annotations

import numpy as np
import pytest

from host.whisper_layers import LOGITS_LAYER
from model.calibrate import CalibStats
from model.sensitivity import layer_errors


def _stats(x: np.ndarray, layer: str = "l") -> CalibStats:
    """Statistics of the rows ``x``, windows of 10 rows each, alternating folds."""
    stats = CalibStats()
    for i in range(0, len(x), 10):
        stats.add(layer, x[i : i + 10], odd=(i // 10) % 2 == 1)
    return stats


def test_few_rows_look_free_in_sample_and_cost_held_out():
    """With fewer calibration rows than inputs, compensation reproduces the rows it saw whatever is pruned: the
    in-sample error is ~0, the held-out error is not. With many rows both agree."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 16)).astype(np.float32)
    mix = rng.standard_normal((64, 64))
    ops = {"l": (w, np.zeros(16, np.float32))}

    def errors(rows: int, heldout: bool) -> float:
        x = rng.standard_normal((rows, 64)) @ mix
        return layer_errors(ops, _stats(x), ["l"], (8, 8), "act-ls", 1e-6, heldout=heldout)["l"][3]  # rate 0.3

    assert errors(40, heldout=False) < 1e-3
    assert errors(40, heldout=True) > 0.05
    many_in, many_out = errors(4000, heldout=False), errors(4000, heldout=True)
    assert many_in > 0.05 and many_out == pytest.approx(many_in, rel=0.2)


def test_heldout_needs_both_folds(whisper_weights):
    from host.cli import UserError
    from host.whisper import gemm_operands
    from model.export import plan_rates
    from model.pipeline import ExportConfig

    ops = gemm_operands(whisper_weights)
    cfg = ExportConfig((8, 8), 0.2, "act-ls", cache_dir=None)  # held-out: the default
    names = cfg.prunable_layers(ops)
    stats = CalibStats()
    for n in names:
        stats.add(n, np.ones((3, ops[n][0].shape[0]), np.float32))  # one window: the odd fold is empty
    with pytest.raises(UserError, match="at least two 30-s windows"):
        plan_rates(whisper_weights, ops, stats, cfg, [])


def tiny_calibration(monkeypatch, windows: int) -> tuple:
    """The suite's tiny Whisper, calibrated on ``windows`` random 16-frame windows of one file ``a.flac`` (which
    later reads of that file see again): ``(weights, mels, stats)``."""
    from test_sequential import tiny_whisper

    import model.calibrate as calibrate
    from host.whisper import DenseGemm, WhisperRuntime

    w = tiny_whisper()
    rng = np.random.default_rng(2)
    mels = [rng.standard_normal((4, 16)).astype(np.float32) for _ in range(windows)]
    monkeypatch.setattr(calibrate, "load_windows", lambda f: [np.full(16 * 160, float(i)) for i in range(windows)])
    monkeypatch.setattr(WhisperRuntime, "features", lambda self, audio: mels[int(audio[0])])
    names = [n for n in DenseGemm(w).ops if n != LOGITS_LAYER]
    return w, mels, calibrate.collect_stats(w, ["a.flac"], names, None, False)


def test_heldout_probe_prunes_on_even_windows_and_decodes_odd_ones(monkeypatch):
    import model.sensitivity as sensitivity
    from host.whisper import DenseGemm, WhisperRuntime

    w, mels, stats = tiny_calibration(monkeypatch, 8)
    names = list(stats.gram)
    decoded, fits = [], []
    real_pass, real_prune = sensitivity.teacher_forced_pass, sensitivity.prune_layer
    monkeypatch.setattr(
        sensitivity, "teacher_forced_pass", lambda rt, enc, tokens: decoded.append(enc) or real_pass(rt, enc, tokens)
    )
    monkeypatch.setattr(
        sensitivity, "prune_layer", lambda w_, t, r, m, g, d: fits.append(g) or real_prune(w_, t, r, m, g, d)
    )
    errors = layer_errors(DenseGemm(w).ops, stats, names, (4, 4), "act-ls", 0.01, heldout=True)
    probe = sensitivity.Probe(w, stats, (4, 4), "act-ls", 0.01, ["a.flac"], heldout=True)
    gains = sensitivity.end_to_end_gains(probe, names, errors)
    assert set(gains) == set(names) and all(np.isfinite(list(gains.values())))
    plain = WhisperRuntime(w, DenseGemm(w))
    refs = [plain.encode(mels[i]) for i in (1, 3, 5)]
    assert all(np.allclose(decoded[i], refs[i]) for i in range(3))  # the references: odd windows
    np.testing.assert_allclose(fits[0], stats.folds(names[0])[0])  # pruned on the even fold


def test_fresh_statistics_are_the_cached_ones(monkeypatch, tmp_path):
    """An export that computes the calibration statistics prunes with exactly the Gram matrices that a later export
    reads back from the cache (float32 on disk), so the package does not depend on whether the cache existed."""
    import model.calibrate as calibrate
    from host.whisper import gemm_operands
    from model.prune import compensate, select_keep, tile_scores

    w, _, fresh = tiny_calibration(monkeypatch, 4)  # computed, no cache
    names = list(fresh.gram)
    cache = tmp_path / "calib.npz"
    fresh.save(cache)  # what collect_stats writes when given a cache
    cached = calibrate.CalibStats.load(cache, names)
    assert cached is not None
    for n in names:
        np.testing.assert_array_equal(fresh.gram[n], cached.gram[n], err_msg=n)
        np.testing.assert_array_equal(fresh.folds(n)[0], cached.folds(n)[0], err_msg=n)
    n = names[0]
    wt = gemm_operands(w)[n][0]
    keep = select_keep(tile_scores(wt, (2, 2), "act", fresh.gram[n]), 0.5)
    np.testing.assert_array_equal(
        compensate(wt, keep, fresh.gram[n], (2, 2)), compensate(wt, keep, cached.gram[n], (2, 2))
    )
