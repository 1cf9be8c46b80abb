"""benchmarks/distill_grid.py's steps that run here (``bundle``, ``assemble``, ``table``) with a tiny random
Whisper-shaped model (test_sweep's) on the synthesized set; ``run`` is replaced by a fake result folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_sweep import audio_whisper

from host.package import load_package

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENCODER_BLOCKS = r"^encoder\.blocks\."


@pytest.fixture()
def grid(monkeypatch):
    import model.load

    weights = audio_whisper()
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(model.load, "load_whisper", lambda source=None: weights)
    import distill_grid

    return distill_grid, weights


def test_bundle_holds_teacher_rates_and_audio(grid, synth_set, tmp_path):
    distill_grid, weights = grid
    out, cache = tmp_path / "bundle", tmp_path / "cache"
    argv = [
        "bundle", "--out", str(out), "--calib", str(synth_set), "--real", str(synth_set), "--synth", str(synth_set),
        "--limit", "2", "--tiles", "8", "--sparsity", "0.3", "--layers", ENCODER_BLOCKS, "--cache-dir", str(cache),
    ]  # fmt: skip
    distill_grid.main(argv)
    teacher = distill_grid.load_teacher(out / "teacher.npz")
    assert set(teacher.params) == set(weights.params) and teacher.vocab == weights.vocab
    for name, w in weights.params.items():  # float16, or int8 per output channel for the decoder GEMMs
        np.testing.assert_allclose(teacher.params[name], w, rtol=0.02, atol=0.02 * float(np.abs(w).max()))
    plan = json.loads((out / "rates.json").read_text())["8/0.30"]
    assert plan["mac_sparsity"] == pytest.approx(0.3, abs=0.1)
    assert all(r == 0 or name.startswith("encoder.blocks.") for name, r in plan["rates"].items())
    sets = json.loads((out / "eval.json").read_text())
    assert [len(sets[k]) for k in ("real", "synth")] == [2, 2]
    assert len(list((out / "audio" / "train").iterdir())) == len(list(synth_set.rglob("*.flac")))
    # the calibration statistics and sensitivity are cached by config: a second bundle reuses them
    cached = sorted(p.relative_to(cache) for p in cache.rglob("*.*"))
    assert [p.parts[0] for p in cached] == ["calib", "sensitivity"]
    stamps = [(cache / p).stat().st_mtime_ns for p in cached]
    distill_grid.main(argv)
    assert [(cache / p).stat().st_mtime_ns for p in sorted(p.relative_to(cache) for p in cache.rglob("*.*"))] == stamps


def test_bundle_trains_on_train_audio_and_refuses_clashing_names(grid, synth_set, tmp_path, capsys):
    distill_grid, _ = grid
    flacs = sorted(synth_set.rglob("*.flac"))
    read = tmp_path / "read"
    read.mkdir()
    shutil.copy(flacs[0], read / flacs[0].name)
    out = tmp_path / "bundle"
    argv = [
        "bundle", "--out", str(out), "--calib", str(synth_set), "--real", str(synth_set), "--synth", str(synth_set),
        "--limit", "1", "--tiles", "8", "--sparsity", "0.3", "--layers", ENCODER_BLOCKS,
        "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    assert distill_grid.main([*argv, "--train-audio", str(read)]) == 0
    assert [p.name for p in (out / "audio" / "train").iterdir()] == [flacs[0].name]
    # the same name in two training folders: refused before the old bundle is touched
    assert distill_grid.main([*argv, "--train-audio", str(read), str(synth_set)]) == 2
    assert f"two training files are named {flacs[0].name}" in capsys.readouterr().err
    assert [p.name for p in (out / "audio" / "train").iterdir()] == [flacs[0].name]
    # run --data all on a bundle without extra audio: refused before any training
    argv = ["run", "--bundle", str(out), "--out", str(tmp_path / "run"), "--device", "cpu", "--data", "all"]
    assert distill_grid.main(argv) == 2
    assert "--data all: the bundle has no extra training audio" in capsys.readouterr().err


def _fake_results(distill_grid, weights, folder: Path) -> None:
    """What ``run`` returns: results.json and int8 shards of a pruned and a 'distilled' (rescaled) model."""
    from host.whisper import gemm_operands
    from model.distill import SparseModel
    from model.export import prune_weights
    from model.quantize import with_gemm_weights

    folder.mkdir()
    rates = {n: 0.3 for n in gemm_operands(weights) if n.startswith("encoder.blocks.")}
    gemm_w, keeps = prune_weights(weights, (8, 8), rates, "magnitude", None)
    pruned = SparseModel(with_gemm_weights(weights, gemm_w), keeps, (8, 8))
    tuned = SparseModel(with_gemm_weights(weights, {n: 1.01 * w for n, w in gemm_w.items()}), keeps, (8, 8))
    distill_grid.save_shard(pruned, folder / "shard-t8-s0.30-act-ls.npz", weights)
    distill_grid.save_shard(tuned, folder / "shard-t8-s0.30-oneshot.npz", weights)
    results = [
        {"key": "t8-s0.30-act-ls", "wer": {"real": 12.0, "synth": 20.0}},
        {"key": "t8-s0.30-oneshot", "wer": {"real": 11.0, "synth": 19.0}, "schedule": "oneshot", "steps": 3},
    ]
    (folder / "results.json").write_text(json.dumps(results))


def test_assemble_then_table(grid, synth_set, tmp_path):
    distill_grid, weights = grid
    _fake_results(distill_grid, weights, tmp_path / "results")
    packages = tmp_path / "packages"
    distill_grid.main(["assemble", "--results", str(tmp_path / "results"), "--out", str(packages)])
    assert sorted(p.name for p in packages.glob("*.sasp")) == [
        "dense-t8.sasp", "t8-s0.30-act-ls.sasp", "t8-s0.30-oneshot.sasp",
    ]  # fmt: skip
    dense = load_package(packages / "dense-t8.sasp")
    for key, method in (("t8-s0.30-act-ls", "act-ls"), ("t8-s0.30-oneshot", "act-ls+distill")):
        pkg = load_package(packages / f"{key}.sasp")  # validated: tile counts, rates and MAC sparsity agree
        meta = pkg.metadata
        assert meta["method"] == method and meta["grid"]["key"] == key
        assert 0 < meta["mac_sparsity"] < 0.3  # of every prunable layer; only the encoder blocks lost tiles
        for name, layer in pkg.layers.items():  # pruned encoder blocks, the rest the dense package's
            full = layer.weights.nnz_tiles == layer.weights.total_tiles
            assert full != name.startswith("encoder.blocks."), name
            if full:
                np.testing.assert_array_equal(layer.weights.tiles, dense.layers[name].weights.tiles)
    assert load_package(packages / "t8-s0.30-oneshot.sasp").metadata["distillation"] == {
        "schedule": "oneshot",
        "steps": 3,
    }
    table = tmp_path / "grid.csv"
    argv = ["table", "--packages", str(packages), "--eval", f"synth={synth_set}", "--limit", "1", "--csv", str(table)]
    distill_grid.main(argv)
    rows = {r["package"]: r for r in csv.DictReader(table.open())}
    assert sorted(rows) == sorted(p.name for p in packages.glob("*.sasp"))
    assert float(rows["dense-t8.sasp"]["mac_sparsity"]) == 0.0
    assert float(rows["dense-t8.sasp"]["modeled_speedup"]) == pytest.approx(1.0)
    for r in rows.values():
        assert float(r["wer_synth"]) >= 0.0 and r["trim"] == "False"
    distill_grid.main(argv)  # resumable: every package is done
    assert len(list(csv.DictReader(table.open()))) == 3


def test_the_real_set_can_be_one_half_of_the_librispeech_split(grid, synth_set, tmp_path):
    """``bundle --half selection``: the GPU grid selects on the selection speakers alone (model.splits)."""
    distill_grid, _ = grid
    clip = next(synth_set.rglob("*.flac"))
    for utt in ("103-1240-0000", "103-1240-0001", "1272-128104-0000"):
        spk, chapter, _ = utt.split("-")
        folder = tmp_path / "ls" / spk / chapter
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, folder / f"{utt}.flac")
        with open(folder / f"{spk}-{chapter}.trans.txt", "a") as f:
            f.write(f"{utt} WORDS\n")
    ids = lambda half: sorted(u.utt_id for u in distill_grid.eval_utterances(tmp_path / "ls", 20, half))  # noqa: E731
    assert ids("selection") == ["103-1240-0000", "103-1240-0001"] and ids("report") == ["1272-128104-0000"]
    assert len(ids(None)) == 3
    shutil.rmtree(tmp_path / "ls" / "1272")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("an earlier bundle")  # kept: the error comes before any work
    assert (
        distill_grid.main(
            [
                "bundle",
                "--out",
                str(tmp_path / "b"),
                "--calib",
                str(synth_set),
                "--real",
                str(tmp_path / "ls"),
                "--half",
                "report",
                "--synth",
                str(synth_set),
            ]
        )
        == 2
    )
    assert (tmp_path / "b" / "keep.txt").exists()


def test_bundle_with_extra_audio_as_opus_and_pseudo_labels(grid, synth_set, tmp_path, monkeypatch):
    """``bundle --extra-audio --opus --pseudo`` without ``--synth``: both training folders as Ogg Opus, the teacher's
    transcript of every clip of each (what ``run`` reads instead of decoding them on the GPU), one evaluation set."""
    import soundfile as sf

    from model.distill import load_clips, read_pseudo

    distill_grid, _ = grid
    monkeypatch.setenv("SASP_CACHE", str(tmp_path / "cache"))
    flacs = sorted(synth_set.rglob("*.flac"))
    read, extra = tmp_path / "read", tmp_path / "extra"
    for folder, files in ((read, flacs[:1]), (extra, flacs[1:3])):
        folder.mkdir()
        for f in files:
            shutil.copy(f, folder / f.name)
    out = tmp_path / "bundle"
    argv = [
        "bundle", "--out", str(out), "--calib", str(synth_set), "--real", str(synth_set), "--limit", "1",
        "--tiles", "8", "--sparsity", "0.3", "--layers", ENCODER_BLOCKS, "--cache-dir", str(tmp_path / "cache"),
        "--train-audio", str(read), "--extra-audio", str(extra), "--opus", "--pseudo",
    ]  # fmt: skip
    assert distill_grid.main(argv) == 0
    assert list(json.loads((out / "eval.json").read_text())) == ["real"]
    for folder, n in (("train", 1), ("extra", 2)):
        files = sorted((out / "audio" / folder).iterdir())
        assert len(files) == n and all(sf.info(f).subtype == "OPUS" for f in files)
        labels = read_pseudo(out / f"pseudo-{folder}.json", len(load_clips([out / "audio" / folder])))
        assert labels is not None and all(len(t) > 0 for t in labels)


def test_run_trains_one_start_per_seed_and_assembles_their_packages(grid, synth_set, tmp_path):
    """``run --seeds 0 1``: two one-shot distillations from one act-ls start (seed 0 keeps the old key, seed 1's
    ends -seed1), each logged with its seed; the shard asked for is saved and assembles into a package that
    records its seed."""
    distill_grid, _ = grid
    flacs = sorted(synth_set.rglob("*.flac"))
    read = tmp_path / "read"
    read.mkdir()
    shutil.copy(flacs[0], read / flacs[0].name)
    bundle, out = tmp_path / "bundle", tmp_path / "run"
    argv = [
        "bundle", "--out", str(bundle), "--calib", str(synth_set), "--real", str(synth_set), "--limit", "1",
        "--tiles", "8", "--sparsity", "0.3", "--layers", ENCODER_BLOCKS, "--cache-dir", str(tmp_path / "cache"),
        "--train-audio", str(read), "--pseudo",
    ]  # fmt: skip
    assert distill_grid.main(argv) == 0
    argv = [
        "run", "--bundle", str(bundle), "--out", str(out), "--device", "cpu", "--tiles", "8", "--sparsity", "0.3",
        "--steps", "1", "--batch", "1", "--trim", "--seeds", "0", "1", "--shards", "t8-s0.30-oneshot-seed1",
    ]  # fmt: skip
    assert distill_grid.main(argv) == 0
    rows = {r["key"]: r for r in json.loads((out / "results.json").read_text())}
    assert [rows[k]["seed"] for k in ("t8-s0.30-oneshot", "t8-s0.30-oneshot-seed1")] == [0, 1]
    assert all(rows[k]["steps"] == 1 for k in ("t8-s0.30-oneshot", "t8-s0.30-oneshot-seed1"))
    assert [p.name for p in out.glob("shard-*.npz")] == ["shard-t8-s0.30-oneshot-seed1.npz"]
    packages = tmp_path / "packages"
    assert distill_grid.main(["assemble", "--results", str(out), "--out", str(packages)]) == 0
    meta = load_package(packages / "t8-s0.30-oneshot-seed1.sasp").metadata
    assert meta["distillation"]["seed"] == 1 and meta["grid"]["key"] == "t8-s0.30-oneshot-seed1"
    no_shards = tmp_path / "rows-only"
    assert distill_grid.main([*argv[:4], str(no_shards), *argv[5:-4], "0", "--no-shards"]) == 0
    assert (no_shards / "results.json").is_file() and not list(no_shards.glob("shard-*"))  # else the best is saved


def test_bundle_takes_a_cells_rates_from_a_package(grid, synth_set, tmp_path, capsys):
    """``bundle --rates-from PKG``: the rates of PKG's cell are the package's (as ``model.export --rates-from``),
    the other cells allocated; a package of no bundle cell is one error line before any work."""
    from model.export import export_package
    from model.pipeline import ExportConfig

    distill_grid, weights = grid
    cfg = ExportConfig((8, 8), 0.3, "magnitude", prunable=ENCODER_BLOCKS, uniform=True, cache_dir=None)
    source = export_package(tmp_path / "uniform.sasp", weights, cfg)
    out, cache = tmp_path / "bundle", tmp_path / "cache"

    def bundle(*sparsity: str, extra: tuple = ()) -> int:
        return distill_grid.main([
            "bundle", "--out", str(out), "--calib", str(synth_set), "--real", str(synth_set), "--limit", "1",
            "--tiles", "8", "--sparsity", *sparsity, "--layers", ENCODER_BLOCKS, "--cache-dir", str(cache), *extra,
        ])  # fmt: skip

    bundle("0.2", "0.3", extra=("--rates-from", str(source)))
    recorded = load_package(source).metadata["layers"]
    got = json.loads((out / "rates.json").read_text())["8/0.30"]["rates"]
    assert got == {n: recorded[n]["rate"] for n in got} and len(set(got.values()) - {0.0}) >= 1
    bundle("0.2", "0.3")  # allocated instead: other rates for the same cell
    assert json.loads((out / "rates.json").read_text())["8/0.30"]["rates"] != got
    (out / "keep.txt").write_text("an earlier bundle")
    capsys.readouterr()
    assert bundle("0.2", extra=("--rates-from", str(source))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rates-from" in err[0] and "8x8 / 0.30 is not one of the bundle's" in err[0]
    assert (out / "keep.txt").exists()
