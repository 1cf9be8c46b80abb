"""model.sweep / model.plots on a 2x2 grid (arrays 8 and 16 x dense and 30% uniform magnitude pruning of the encoder
blocks, 2 synthesized utterances). The packages come from a tiny random Whisper-shaped model (width 32, one layer
each side, full 1500-position audio context, 8 decoded tokens at most) written into the sweep's package cache, so
every point costs about a second: the grid runs in local worker processes and as local Ray tasks with identical
results, resumes without recomputing, models extra boards from the stored calls, and writes non-empty plots."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from model import sweep
from model.pipeline import ExportConfig
from model.sweep import Point, SweepConfig, grid, package_path, run_sweep

ARRAYS, SPARSITY = (8, 16), (0.3,)


def make_cfg(synth_set: Path, out: Path, packages: Path, boards=("pynq-z2",)) -> SweepConfig:
    return SweepConfig(
        eval_dir=synth_set,
        out=out,
        # uniform: no calibration or sensitivity, magnitude scores alone
        export=ExportConfig(uniform=True, prunable=r"^encoder\.blocks\.", cache_dir=None),
        boards=boards,
        limit=2,
        packages=packages,
        progress=False,
    )


def audio_whisper(d: int = 32):
    """A random Whisper-shaped model that runs on real audio (80 mels, 1500 encoder positions) in milliseconds."""
    import numpy as np
    from conftest import make_tiny_whisper

    from host.whisper_weights import WhisperWeights

    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]
    vocab = [chr(ord("a") + i) for i in range(13)] + specials
    w = make_tiny_whisper(d=d, n_mels=80, vocab_size=len(vocab), seed=1)
    rng = np.random.default_rng(2)
    params = dict(w.params)
    params["encoder.positional_embedding"] = rng.standard_normal((1500, d)).astype(np.float32)
    params["decoder.positional_embedding"] = rng.standard_normal((16, d)).astype(np.float32)
    config = {**w.config, "n_audio_ctx": 1500, "n_text_ctx": 16}
    return WhisperWeights(params, config, vocab, suppress_ids=[0], suppress_ids_begin=[len(vocab) - 3])


@pytest.fixture(scope="module")
def local_run(synth_set, tmp_path_factory):
    """The grid run once in two local worker processes; its packages are shared with the Ray run."""
    from model.export import export_package

    root = tmp_path_factory.mktemp("sweep")
    cfg = make_cfg(synth_set, root / "local", root / "packages")
    weights = audio_whisper()
    for p in grid(ARRAYS, SPARSITY, "magnitude"):  # the sweep's package cache, filled with the tiny model
        export_package(package_path(p, cfg), weights, cfg.export_config(p))
    res = run_sweep(cfg, grid(ARRAYS, SPARSITY, "magnitude"), workers=2)
    return cfg, res


def test_grid_has_dense_points_and_labelled_outputs(local_run):
    cfg, res = local_run
    assert list(res.points) == ["a8-dense", "a8-s0.30-magnitude", "a16-dense", "a16-s0.30-magnitude"]
    assert sorted(res.computed) == sorted(res.points) and res.skipped == []  # completion order
    for r in res.rows:
        assert r["wer"]["label"] == "measured (jiwer)"
        assert r["latency_s"]["label"] == r["energy_j"]["label"] == r["speedup"]["label"] == "modeled"
        assert r["mac_sparsity"]["label"] == "counted" and r["DSP"]["label"] == r["fits"]["label"] == "modeled"
        assert r["utterances"] == 2
    dense = {r["array"]: r for r in res.rows if r["target_sparsity"] == 0}
    pruned = {r["array"]: r for r in res.rows if r["target_sparsity"] > 0}
    for a in ARRAYS:
        assert dense[a]["speedup"]["value"] == pytest.approx(1.0)
        assert pruned[a]["mac_sparsity"]["value"] > 0.1
        # same calls with every tile present are slower: pruning saves kernel cycles on this array
        assert pruned[a]["speedup_same_calls"]["value"] > 1.0
        assert pruned[a]["kernel_cycle_speedup"]["value"] > 1.0
        # removing every prunable tile saves more than this point's pruning does
        assert pruned[a]["pruning_ceiling"]["value"] > pruned[a]["speedup_same_calls"]["value"]
        assert dense[a]["pruning_ceiling"]["value"] == pytest.approx(pruned[a]["pruning_ceiling"]["value"], rel=0.05)
    # the mean over utterances equals the mean of the per-utterance models (latency is a sum over calls)
    p = res.points["a8-s0.30-magnitude"]
    per_utt = [u["modeled"]["pynq-z2"]["latency_s"] for u in p["utterance_rows"]]
    assert p["modeled"]["pynq-z2"]["latency_s"]["value"] == pytest.approx(sum(per_utt) / len(per_utt))
    # CSV columns carry unit and label; JSON has the headline
    with res.files["csv"].open() as f:
        header = next(csv.reader(f))
    assert "wer [fraction; measured (jiwer)]" in header and "speedup [x; modeled]" in header
    summary = json.loads(res.files["json"].read_text())
    assert set(summary["headline"]["pynq-z2"]) == {"8", "16"}


def test_resume_skips_finished_points(local_run, monkeypatch):
    cfg, res = local_run
    files = sorted((Path(cfg.out) / "points").glob("*.json"))
    assert len(files) == 4
    before = {f: (f.stat().st_mtime_ns, json.loads(f.read_text())["cost"]["finished_at"]) for f in files}

    def must_not_run(point, cfg):
        raise AssertionError(f"point {point.key} recomputed on resume")

    monkeypatch.setattr(sweep, "run_point", must_not_run)
    again = run_sweep(cfg, grid(ARRAYS, SPARSITY, "magnitude"), workers=1, plots=False)
    assert again.computed == [] and again.skipped == list(res.points)
    assert {f: (f.stat().st_mtime_ns, json.loads(f.read_text())["cost"]["finished_at"]) for f in files} == before
    assert again.rows == res.rows

    # a new board is modeled from the stored calls, still without evaluating again
    both = make_cfg(cfg.eval_dir, cfg.out, cfg.packages, boards=("pynq-z2", "ultra96-v2"))
    more = run_sweep(both, grid(ARRAYS, SPARSITY, "magnitude"), workers=1, plots=False)
    assert more.computed == [] and {r["board"] for r in more.rows} == {"pynq-z2", "ultra96-v2"}
    fits = {(r["board"], r["array"]): r["fits"]["value"] for r in more.rows}
    assert fits[("ultra96-v2", 16)] and not fits[("pynq-z2", 16)]  # 256 DSP > the xc7z020's 220

    # a missing point file: only that point runs again, here in this process (workers=1): same record as the
    # one the worker process wrote
    calls = []
    monkeypatch.undo()
    real = sweep.run_point

    def counted(point, cfg):
        calls.append(point.key)
        return real(point, cfg)

    monkeypatch.setattr(sweep, "run_point", counted)
    victim = sweep.point_file(cfg, Point(16, 0.3, "magnitude"), cfg.fingerprint())
    old = json.loads(victim.read_text())
    victim.unlink()
    third = run_sweep(cfg, grid(ARRAYS, SPARSITY, "magnitude"), workers=1, plots=False)
    assert calls == ["a16-s0.30-magnitude"] and third.computed == calls and victim.exists()
    new = json.loads(victim.read_text())
    assert new["cost"]["worker"] != old["cost"]["worker"]
    assert {k: v for k, v in new.items() if k != "cost"} == {k: v for k, v in old.items() if k != "cost"}
    assert third.rows == res.rows


def test_fingerprints_and_package_names_keep_their_values(tmp_path):
    """Finished points and packages (results/) are found again: the strings are those of the sweep before its
    settings became an ExportConfig; a pruning pattern other than free tiles gets names of its own."""
    from dataclasses import replace

    chapter, calib = tmp_path / "eval" / "1" / "2", tmp_path / "calib"
    chapter.mkdir(parents=True)
    calib.mkdir()
    for i in range(2):
        (chapter / f"1-2-{i:04d}.flac").write_bytes(b"x" * (100 + i))  # the fingerprint reads sizes only
    (chapter / "1-2.trans.txt").write_text("1-2-0000 HELLO\n1-2-0001 WORLD\n")
    (calib / "a.wav").write_bytes(b"y" * 64)
    points = (Point(8, 0.0, "act-ls"), Point(16, 0.3, "act-ls"))
    custom = ExportConfig(calib=(calib,), uniform=True, prunable=r"^encoder\.", damp=0.05, model="m")
    distilled = {"trim": True, "distill": {"epochs": 1}}
    in_sample = ExportConfig(sensitivity="in-sample")  # the sensitivity analysis of every sweep before held-out
    expected = [  # without --calib the bundled statistics set chooses the tiles since session 38: new names
        (in_sample, {}, "81fc69cca7", "11017dee", "act-ls-s0.30-3979ac7e"),  # before: 8e1607ce8c, 687ab3b8
        (replace(in_sample, calib=(calib,)), {}, "900d57e18d", "11017dee", "act-ls-s0.30-8cf4f153"),
        (custom, distilled, "25823d6c66", "deea0f77", "act-ls-s0.30-uniform-distill-94332c2d"),
    ]
    for export, extra, fingerprint, dense, pruned in expected:
        cfg = SweepConfig(eval_dir=tmp_path / "eval", out=tmp_path / "out", export=export, **extra)
        assert cfg.fingerprint() == fingerprint
        names = [package_path(p, cfg).name for p in points]
        assert names == [f"whisper-tiny.en-8x8-dense-{dense}.sasp", f"whisper-tiny.en-16x16-{pruned}.sasp"]
    default, old = (
        SweepConfig(eval_dir=tmp_path / "eval", out=tmp_path / "out", export=e) for e in (ExportConfig(), in_sample)
    )
    assert default.export.heldout and default.fingerprint() != old.fingerprint()  # held-out rates: points of their own
    assert package_path(points[1], default) != package_path(points[1], old)
    assert package_path(points[0], default) == package_path(points[0], old)  # dense packages are shared
    units = replace(cfg, export=replace(custom, pattern="units"))
    assert units.fingerprint() != cfg.fingerprint()
    assert package_path(points[1], units) != package_path(points[1], cfg)
    assert units.export_config(points[1]).pattern == "units"


def test_permuted_points_are_their_own_and_refused_where_the_reordering_cannot_work(tmp_path, capsys):
    """``--permute`` gives pruned points and packages their own fingerprint and name (dense packages stay shared);
    with a magnitude method or the gradual distillation schedule the sweep refuses it in one line, exit code 2."""
    from dataclasses import replace

    chapter = tmp_path / "eval" / "1" / "2"
    chapter.mkdir(parents=True)
    (chapter / "1-2-0000.flac").write_bytes(b"x" * 100)
    (chapter / "1-2.trans.txt").write_text("1-2-0000 HELLO\n")
    plain = SweepConfig(eval_dir=tmp_path / "eval", out=tmp_path / "out", export=ExportConfig())
    reordered = replace(plain, export=replace(plain.export, permute=True))
    dense, pruned = Point(16, 0.0, "act-ls"), Point(16, 0.3, "act-ls")
    assert reordered.fingerprint() != plain.fingerprint()
    assert package_path(pruned, reordered) != package_path(pruned, plain)
    assert package_path(dense, reordered) == package_path(dense, plain)
    assert reordered.export_config(pruned).permute
    for extra in (["--method", "magnitude"], ["--distill", "--distill-schedule", "gradual"]):
        with pytest.raises(SystemExit) as stop:
            sweep.main(["--eval", str(tmp_path / "eval"), "--out", str(tmp_path / "out"), "--permute", *extra])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--permute" in err[0]


def test_plots_written(local_run):
    cfg, res = local_run
    names = {"wer_vs_speedup_pynq-z2", "pareto_energy_pynq-z2", "layer_rates"}
    assert names <= set(res.files)
    for name in names:
        data = res.files[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_calibration_and_evaluation_must_differ(synth_set, tmp_path):
    cfg = SweepConfig(eval_dir=synth_set, out=tmp_path, export=ExportConfig(calib=(synth_set,)), limit=2)
    with pytest.raises(ValueError, match="also calibration audio"):
        run_sweep(cfg, [Point(8, 0.1, "act-ls")], plots=False)


def test_ray_matches_local(local_run, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ray>=2.9', the 'sweep' extra)")
    cfg, res = local_run
    rcfg = make_cfg(cfg.eval_dir, tmp_path / "ray", cfg.packages)  # packages reused, points computed again
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        rres = run_sweep(rcfg, grid(ARRAYS, SPARSITY, "magnitude"), ray_address="auto", plots=False)
        workers = {p["cost"]["worker"] for p in rres.points.values()}
    finally:
        ray.shutdown()
    assert sorted(rres.computed) == sorted(res.points)
    assert rres.rows == res.rows
    assert rres.files["csv"].read_text() == res.files["csv"].read_text()
    for key, p in rres.points.items():
        q = res.points[key]
        assert p["calls"] == q["calls"] and p["utterance_rows"] == q["utterance_rows"]
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # ran in Ray worker processes


def test_trim_runs_the_encoder_on_trimmed_windows(local_run, tmp_path):
    """``--trim`` reaches the evaluation: every utterance's encoder window is a bucket shorter than 30 s."""
    from dataclasses import replace

    from host.whisper import window_buckets

    cfg, _ = local_run
    point = Point(8, 0.0, "magnitude")
    trimmed = sweep.run_point(point, replace(cfg, out=tmp_path, trim=True))
    full = sweep.run_point(point, replace(cfg, out=tmp_path))
    assert {u["encoder_positions"] for u in full["utterance_rows"]} == {1500}
    positions = {u["encoder_positions"] for u in trimmed["utterance_rows"]}
    assert positions and positions < set(window_buckets(1500)) - {1500}
    assert trimmed["modeled"]["pynq-z2"]["latency_s"]["value"] < full["modeled"]["pynq-z2"]["latency_s"]["value"]


def test_a_looping_trimmed_window_counts_both_runs(local_run, tmp_path, monkeypatch):
    """A trimmed window decoded again with the full window (``host.longform``'s loop fallback) is one utterance
    row whose tokens, calls, host work and modeled figures are those of both runs."""
    from collections import Counter
    from dataclasses import replace

    import host.longform

    cfg, _ = local_run
    point = Point(8, 0.3, "magnitude")
    trimmed = sweep.run_point(point, replace(cfg, out=tmp_path, trim=True))
    full = sweep.run_point(point, replace(cfg, out=tmp_path))
    monkeypatch.setattr(host.longform, "COMPRESSION_RATIO_THRESHOLD", -1.0)  # every trimmed window loops
    monkeypatch.setattr(host.longform, "FALLBACK_TEMPERATURES", ())  # and no sampling after (tests/test_session.py)
    looped = sweep.run_point(point, replace(cfg, out=tmp_path, trim=True))

    def calls(result: dict) -> Counter:
        return Counter(dict(sweep.decode_calls(result["calls"])))

    assert calls(looped) == calls(trimmed) + calls(full)
    for lo, tr, fu in zip(looped["utterance_rows"], trimmed["utterance_rows"], full["utterance_rows"]):
        assert lo["hypothesis"] == fu["hypothesis"] and lo["encoder_positions"] == 1500
        assert lo["tokens"] == tr["tokens"] + fu["tokens"]
        for figure in ("latency_s", "energy_j"):  # both sums over calls and host work
            both = tr["modeled"]["pynq-z2"][figure] + fu["modeled"]["pynq-z2"][figure]
            assert lo["modeled"]["pynq-z2"][figure] == pytest.approx(both)
