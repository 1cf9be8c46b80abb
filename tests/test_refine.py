"""The end-to-end probe on the deployed (trimmed) window, and rates refined by probing where the allocation lands
(``--probe trimmed``, ``--refine N``; model.sensitivity)."""

from __future__ import annotations

import pytest

import model.sensitivity as sensitivity
from model.sensitivity import RATES, cost_curves, refine_rates


def test_cost_curves_use_measured_points_and_the_nearest_ratio():
    errors = {"a": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}
    gains = {"a": 2.0}  # KL / error at the probe rate 0.3
    assert cost_curves(errors, gains, {})["a"] == pytest.approx([2 * e for e in errors["a"]])
    curve = cost_curves(errors, gains, {"a": {0.5: 5.0}})["a"]  # KL 5 where the error is 0.5: ratio 10
    assert curve[5] == 5.0
    assert curve[2] == pytest.approx(0.4) and curve[3] == pytest.approx(0.6)  # nearest: 0.3 (gain 2)
    assert curve[4] == pytest.approx(0.8)  # 0.4 is as near 0.3 as 0.5: the lower one
    assert curve[8] == pytest.approx(8.0)  # nearest: 0.5 (ratio 10)


class FakeProbe:
    """True KL of each layer alone: ``a`` grows with its error up to 0.3 and steeply past it, ``b`` linearly."""

    def __init__(self) -> None:
        self.calls = []

    def kl(self, name: str, rate: float) -> float:
        self.calls.append((name, rate))
        return rate if name == "b" or rate <= 0.3 else 0.3 + 20 * (rate - 0.3)


def test_refinement_moves_rate_away_from_a_layer_that_is_steeper_than_its_probe_said():
    errors = {n: list(RATES) for n in "ab"}  # the same layer error at every rate
    gains = {"a": 1.0, "b": 1.0}  # and the same KL at 0.3
    macs = {"a": 1.0, "b": 1.0}
    one_probe = sensitivity.allocate_rates(cost_curves(errors, gains, {}), RATES, macs, 0.5)
    assert one_probe["a"] + one_probe["b"] == pytest.approx(1.0) and one_probe["a"] >= 0.4  # blind to a's rise
    probe, measured = FakeProbe(), {}
    rates = refine_rates(probe, errors, gains, measured, macs, 0.5, rounds=6)
    assert rates == pytest.approx({"a": 0.3, "b": 0.7})
    assert measured["a"][0.4] == pytest.approx(2.3)  # the probes are kept (the cache stores them)
    assert len(probe.calls) == len(set(probe.calls))  # nothing probed twice
    again = FakeProbe()
    assert refine_rates(again, errors, gains, measured, macs, 0.5, rounds=6) == rates and not again.calls


def test_trimmed_probe_runs_the_encoder_on_the_trimmed_window(monkeypatch):
    from test_heldout import tiny_calibration

    from host.whisper import WhisperRuntime

    w, _, stats = tiny_calibration(monkeypatch, 4)
    monkeypatch.setattr(sensitivity, "trimmed_ctx", lambda n_samples, n_ctx: 4)  # 8 of the 16 mel frames
    seen = []
    real = WhisperRuntime.encode
    monkeypatch.setattr(WhisperRuntime, "encode", lambda self, mel, ctx=None: seen.append(ctx) or real(self, mel, ctx))
    full = sensitivity.Probe(w, stats, (4, 4), "act-ls", 0.01, ["a.flac"])
    trimmed = sensitivity.Probe(w, stats, (4, 4), "act-ls", 0.01, ["a.flac"], trimmed=True)
    assert all(c[2].shape[0] == 8 for c in full.clips)  # the tiny model's full window
    assert all(c[2].shape[0] == 4 for c in trimmed.clips)  # the dense references on the trimmed window
    seen.clear()
    assert trimmed.kl("encoder.blocks.0.mlp.0", 0.5) > 0
    assert seen and set(seen) == {4}  # and the pruned encoder
    assert trimmed.kl("encoder.blocks.0.mlp.0", 0.0) == 0.0


def test_probe_and_refine_are_recorded_and_key_the_cache_only_when_on(tmp_path):
    from test_sequential import tiny_whisper

    from host.whisper_weights import WhisperWeights
    from model.pipeline import ExportConfig, step_cache

    w: WhisperWeights = tiny_whisper()
    base = ExportConfig((8, 8), 0.2, cache_dir=tmp_path)
    trimmed, refined = (
        ExportConfig((8, 8), 0.2, cache_dir=tmp_path, **kw) for kw in ({"probe": "trimmed"}, {"refine": 2})
    )
    assert "probe" not in base.opt_in() and "refine" not in base.opt_in()
    assert trimmed.opt_in()["probe"] == "trimmed" and refined.opt_in()["refine"] == 2
    assert "refine" not in ExportConfig((8, 8), 0.2, uniform=True, refine=2).opt_in()  # no sensitivity analysis
    key = {c: step_cache("sensitivity", c, w, []) for c in (base, trimmed, refined)}
    assert key[base] != key[trimmed]  # another probe, other gains
    assert key[base] == key[refined]  # refinement adds its probes to the same analysis
    with pytest.raises(ValueError, match="probe window"):
        ExportConfig(probe="half")
