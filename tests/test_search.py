"""The evolutionary search of per-layer rates on the whole pruned model's KL (``--search G``, model.search)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import model.search as search
from host.cli import UserError
from model.pipeline import ExportConfig
from model.sensitivity import RATES


@pytest.fixture
def tiny(monkeypatch):
    """``(weights, stats, macs)`` of the suite's tiny Whisper calibrated on 8 windows; every file read by the search
    gives those 8 windows again, and the search takes 3 + 2 of them."""
    from test_heldout import tiny_calibration

    from host.whisper import gemm_operands
    from model.export import layer_macs

    w, _, stats = tiny_calibration(monkeypatch, 8)
    monkeypatch.setattr(search, "load_windows", lambda f: [np.full(16 * 160, float(i)) for i in range(8)])
    monkeypatch.setattr(search, "SEARCH_WINDOWS", 3)
    monkeypatch.setattr(search, "VALID_WINDOWS", 2)
    return w, stats, layer_macs(gemm_operands(w), list(stats.gram))


def uniform(macs, rate):
    return {n: rate for n in macs}


def test_children_switch_levels_and_keep_the_mac_budget(tiny):
    w, stats, macs = tiny
    rs = search.RateSearch(w, stats, macs, (4, 4), "act-ls", 0.01)
    parent, rng = uniform(macs, 0.3), random.Random(1)
    slack = 0.1 * max(macs.values()) / sum(macs.values())
    for _ in range(50):
        child = rs.mutate(parent, 0.3, rng)
        assert child != parent and all(r in RATES for r in child.values())
        steps = [round((child[n] - parent[n]) / 0.1) for n in macs]
        assert sum(s for s in steps if s > 0) <= search.MAX_SWITCHES and sum(steps) in range(-3, 4)
        assert 0.3 - 1e-9 <= rs.share(child) <= 0.3 + slack + 1e-9


def test_the_search_keeps_the_best_allocation_and_repeats_itself(tiny, monkeypatch):
    w, stats, macs = tiny
    names = sorted(macs)
    cost = {n: 1.0 + i for i, n in enumerate(names)}  # later layers are dearer

    def fake_kl(self, rates, windows):
        return sum(cost[n] * rates[n] ** 2 for n in names) + 0.01 * len(windows)

    monkeypatch.setattr(search.RateSearch, "kl", fake_kl)
    rs = search.RateSearch(w, stats, macs, (4, 4), "act-ls", 0.01)
    start, wins = uniform(macs, 0.3), [None] * 3
    result = rs.run(start, 0.3, 30, wins, [None] * 2, progress=False)
    assert result.search_kl[0] == pytest.approx(fake_kl(rs, start, wins))
    assert result.search_kl[1] == pytest.approx(fake_kl(rs, result.rates, wins))
    assert result.search_kl[1] < result.search_kl[0]
    assert result.valid_kl[1] < result.valid_kl[0]
    assert all(b <= a for a, b in zip(result.history, result.history[1:]))  # the parent never gets worse
    assert sum(cost[n] * (result.rates[n] - 0.3) for n in names) < 0  # rate moved to cheaper layers
    assert rs.share(result.rates) >= 0.3 - 1e-9
    assert rs.run(start, 0.3, 30, wins, [None] * 2, progress=False) == result  # fixed seed


def test_search_rates_scores_the_pruned_tiny_model(tiny):
    w, stats, macs = tiny
    start = uniform(macs, 0.2)
    rs = search.RateSearch(w, stats, macs, (4, 4), "act-ls", 0.01)
    result = search.search_rates(rs, start, 0.2, 2, ["b.flac"], progress=False)
    assert set(result.rates) == set(macs) and len(result.history) == 2
    assert all(k >= 0 and math.isfinite(k) for k in (*result.search_kl, *result.valid_kl))
    assert result.search_kl[0] > 0  # the pruned model does differ from the dense one
    meta = result.metadata(2, 1)
    assert meta["windows"] == [3, 2] and meta["valid_kl"] == list(result.valid_kl)
    with pytest.raises(ValueError, match="needs 5 windows"):
        search.search_rates(rs, start, 0.2, 2, [], progress=False)


def test_result_cache_is_checked_when_read(tmp_path):
    path = tmp_path / "s.json"
    result = search.SearchResult({"a": 0.2, "b": 0.0}, (0.3, 0.2), (0.4, 0.35), [0.25, 0.2])
    result.write(path)
    assert search.SearchResult.read(path, ["a", "b"]) == result
    assert search.SearchResult.read(path, ["a"]) is None  # other layers
    for bad in ('{"rates": {"a": 0.25, "b": 0.0}', "[]", '{"rates": {"a": 0.25, "b": 0.0}}'):
        path.write_text(bad)
        assert search.SearchResult.read(path, ["a", "b"]) is None
    path.write_text(path.read_text().replace("0.25", "0.2"))
    assert search.SearchResult.read(path, ["a", "b"]) is None  # truncated: no scores
    search.SearchResult({"a": 0.25, "b": 0.0}, (0.3, 0.2), (0.4, 0.35), []).write(path)
    assert search.SearchResult.read(path, ["a", "b"]) is None  # not a rate of RATES
    search.SearchResult({"a": 0.2, "b": 0.0}, (0.3, float("nan")), (0.4, 0.35), []).write(path)
    assert search.SearchResult.read(path, ["a", "b"]) is None


def test_search_leaves_out_calibration_audio_and_is_cached(tiny, tmp_path, monkeypatch):
    import model.export as export

    w, stats, macs = tiny
    (tmp_path / "calib").mkdir()
    (tmp_path / "more").mkdir()
    for folder, name, data in (("calib", "a.flac", b"A"), ("more", "a.flac", b"A"), ("more", "b.flac", b"B")):
        (tmp_path / folder / name).write_bytes(data)
    cfg = ExportConfig((4, 4), 0.2, search=2, search_audio=(tmp_path / "more",), cache_dir=tmp_path / "cache")
    seen = []
    real = export.search_rates
    monkeypatch.setattr(export, "search_rates", lambda *a, **k: seen.append(a[4]) or real(*a, progress=False, **k))
    start = uniform(macs, 0.2)
    result, files = export.searched_rates(w, stats, cfg, [tmp_path / "calib" / "a.flac"], macs, start)
    assert files == 1 and [f.name for f in seen[0]] == ["b.flac"]  # the copy of the calibration file is left out
    again, _ = export.searched_rates(w, stats, cfg, [tmp_path / "calib" / "a.flac"], macs, start)
    assert again == result and len(seen) == 1  # from the cache
    other = search.RateSearch(w, stats, macs, (4, 4), "act-ls", 0.01).mutate(start, 0.2, random.Random(5))
    export.searched_rates(w, stats, cfg, [tmp_path / "calib" / "a.flac"], macs, other)
    assert len(seen) == 2  # another start is another search
    only_calib = ExportConfig((4, 4), 0.2, search=2, search_audio=(tmp_path / "calib",), cache_dir=None)
    with pytest.raises(UserError, match="every file is also calibration audio"):
        export.searched_rates(w, stats, only_calib, [tmp_path / "calib" / "a.flac"], macs, start)


def test_search_is_recorded_only_when_on_and_needs_free_tiles():
    assert "search" not in ExportConfig((8, 8), 0.2).opt_in()
    on = ExportConfig((8, 8), 0.2, search=4, search_audio=("x",))
    assert on.opt_in()["search"] == 4 and on.opt_in()["search_audio"] == ["x"]
    for bad in ({"uniform": True}, {"pattern": "units"}, {"search_audio": ()}):
        with pytest.raises(ValueError):
            ExportConfig((8, 8), 0.2, **{"search": 4, "search_audio": ("x",), **bad})


def test_plan_rates_searches_after_the_allocator(tiny, tmp_path):
    from host.whisper import gemm_operands
    from model.export import plan_rates

    w, stats, macs = tiny
    for folder, data in (("calib", b"A"), ("more", b"B")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.flac").write_bytes(data)
    calib = [tmp_path / "calib" / "a.flac"]
    base = ExportConfig((4, 4), 0.3, cache_dir=None)
    searched = ExportConfig((4, 4), 0.3, search=2, search_audio=(tmp_path / "more",), cache_dir=None)
    start, plan = (
        plan_rates(w, gemm_operands(w), stats, base, calib),
        plan_rates(w, gemm_operands(w), stats, searched, calib),
    )
    assert start.search is None and plan.search["generations"] == 2 and plan.search["files"] == 1
    assert plan.mac_sparsity >= 0.3 - 1e-9 and set(plan.rates) == set(start.rates)
