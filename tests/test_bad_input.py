"""Bad input never gives a silent wrong answer, a traceback or a corrupt cache (issue 15).

Every entry point with out-of-range values: exit code 2 and one line on stderr, before any work. Every cache
writer interrupted mid-write: nothing partial is left and the next run rebuilds what is damaged."""

from __future__ import annotations

import csv
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host.package import load_package


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test here caches under its own folder (SASP_CACHE), never in ~/.cache."""
    monkeypatch.setenv("SASP_CACHE", str(tmp_path / "cache"))


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "error" in err[0] and "Traceback" not in err[0]
    return err[0]


def _run(module: str, argv, capsys) -> str:
    """Run ``module.main(argv)``; it must stop with exit code 2 and one error line, which is returned."""
    main = importlib.import_module(module).main
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    assert code == 2
    return _one_error_line(capsys)


@pytest.fixture()
def corrupt_package(tmp_path) -> Path:
    path = tmp_path / "corrupt.sasp"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    return path


@pytest.fixture()
def empty_dir(tmp_path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _wav(path: Path, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return path


DEMO = "host.asr_demo"
CASES = [
    (DEMO, ["--array", "0"], "--array: 0 is out of range"),
    (DEMO, ["--array", "7"], "--array: array 7x7"),
    (DEMO, ["--array", "-8"], "--array: -8 is out of range"),
    (DEMO, ["--sparsity", "-0.1"], "--sparsity: -0.1 is out of range"),
    (DEMO, ["--sparsity", "1.5"], "--sparsity: 1.5 is out of range"),
    (DEMO, ["--sparsity", "nan"], "--sparsity: nan is out of range"),
    (DEMO, ["--timeout", "0"], "--timeout: 0 is out of range"),
    (DEMO, ["--librispeech", ".", "--limit", "-1"], "--limit: -1 is out of range"),
    (DEMO, ["--librispeech", ".", "--limit", "0"], "--limit: 0 is out of range"),
    (DEMO, ["--limit", "3"], "--limit: applies to --librispeech only"),
    (DEMO, ["--method", "best"], "--method: invalid choice"),
    (DEMO, ["--board", "zedboard"], "unknown board"),
    (DEMO, ["--wav", "{tmp}/missing.flac"], "missing.flac: audio file not found"),
    (DEMO, ["--librispeech", "{tmp}/nowhere"], "nowhere: not a directory"),
    (DEMO, ["--package", "{corrupt}"], "corrupt.sasp: header is not valid package JSON"),
    (DEMO, ["--package", "{corrupt}", "--sparsity", "0.2"], "--sparsity/--calib"),
    (DEMO, ["--sparsity", "0.2", "--calib", "{empty}"], "no audio files under"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--tile", "0"], "--tile: 0 is out of range"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--tile", "7"], "the kernel cannot run this tile"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--sparsity", "1.5"], "--sparsity: 1.5 is out of range"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--sparsity", "0.9", "--calib", "{empty}"], "at most 0.8"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--sparsity", "0.2", "--calib", "{empty}"], "no audio files under"),
    ("model.export", ["--out", "{tmp}", "--sparsity", "0"], "--out: "),
    ("model.export", ["--out", "{tmp}/p.sasp", "--layers", "("], "--layers: '(' is not a regular expression"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--damp", "-1"], "--damp: -1 is out of range"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--distill", "{empty}"], "--distill: needs --sparsity > 0"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--distill-epochs", "0"], "--distill-epochs: 0 is out of range"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--sparsity", "0.2", "--search", "2"], "--search: needs --search-audio"),
    ("model.export", ["--out", "{tmp}/p.sasp", "--search", "2", "--search-audio", "{empty}"], "needs --sparsity > 0"),
    (
        "model.export",
        ["--out", "{tmp}/p.sasp", "--sparsity", "0.2", "--search", "2", "--pattern", "units", "--search-audio", "."],
        "sensitivity-based rates of free tiles",
    ),
    (
        "model.export",
        ["--out", "{tmp}/p.sasp", "--sparsity", "0.2", "--search", "2", "--search-audio", "{empty}"],
        "no audio files under",
    ),
    (
        "model.export",
        ["--out", "{tmp}/p.sasp", "--sparsity", "0.2", "--stats-audio", "{empty}"],
        "no audio files under",
    ),
    (
        "model.export",
        ["--out", "{tmp}/p.sasp", "--sparsity", "0.2", "--stats-audio", "{tmp}/nowhere"],
        "nowhere: no such",
    ),
    ("model.export", ["--out", "{tmp}/p.sasp", "--stats-audio", "."], "--stats-audio: needs --sparsity > 0"),
    (
        "model.export",
        ["--out", "{tmp}/p.sasp", "--sparsity", "0.2", "--method", "magnitude", "--stats-audio", "."],
        "--stats-audio: needs --sparsity > 0 and a --method that prunes on statistics",
    ),
    ("model.evaluate", ["--librispeech", ".", "--limit", "-1"], "--limit: -1 is out of range"),
    ("model.evaluate", ["--librispeech", ".", "--limit", "0"], "--limit: 0 is out of range"),
    ("model.evaluate", ["--librispeech", "{tmp}/nowhere"], "nowhere: not a directory"),
    ("model.evaluate", ["--librispeech", "{empty}"], "no *.trans.txt files"),
    ("model.evaluate", ["--librispeech", ".", "--csv", "{tmp}"], "--csv: "),
    ("model.distill", ["--package", "p", "--audio", "a", "--out", "o", "--epochs", "0"], "--epochs: 0 is out of range"),
    ("model.distill", ["--package", "p", "--audio", "a", "--out", "o", "--lr", "-1"], "--lr: -1 is out of range"),
    ("model.distill", ["--package", "p", "--audio", "a", "--out", "o", "--batch", "0"], "--batch: 0 is out of range"),
    ("model.distill", ["--package", "p", "--audio", "a", "--out", "o", "--layers", "["], "not a regular expression"),
    ("model.sweep", ["--eval", ".", "--arrays", "7"], "--arrays: array 7x7"),
    ("model.sweep", ["--eval", ".", "--sparsity", "1.5"], "--sparsity: 1.5 is out of range"),
    ("model.sweep", ["--eval", ".", "--limit", "0"], "--limit: 0 is out of range"),
    ("model.sweep", ["--eval", ".", "--workers", "0"], "--workers: 0 is out of range"),
    ("model.synth_speech", ["--out", "{tmp}/s", "--count", "0"], "--count: 0 is out of range"),
    ("model.synth_speech", ["--out", "{tmp}/s", "--count", "-3"], "--count: -3 is out of range"),
    ("model.synth_speech", ["--out", "{tmp}/s", "--bench", "-5"], "--bench: -5 is out of range"),
]


@pytest.mark.parametrize(("module", "argv", "fault"), CASES, ids=[f"{m}:{' '.join(a)}" for m, a, _ in CASES])
def test_entry_points_refuse_bad_values_up_front(module, argv, fault, tmp_path, corrupt_package, empty_dir, capsys):
    argv = [a.format(tmp=tmp_path, corrupt=corrupt_package, empty=empty_dir) for a in argv]
    line = _run(module, argv, capsys)
    assert fault in line, line
    assert not (tmp_path / "cache").exists()  # nothing was built or cached


def test_debug_shows_the_traceback(corrupt_package):
    from host import asr_demo

    with pytest.raises(ValueError, match="not valid package JSON"):  # raised: the traceback is shown
        asr_demo.main(["--package", str(corrupt_package), "--debug"])


def test_demo_non_utf8_reference_is_one_line(tmp_path, capsys):
    wav = _wav(tmp_path / "clip.wav")
    wav.with_suffix(".txt").write_bytes(b"caf\xe9 au lait\n")
    line = _run(DEMO, ["--wav", str(wav)], capsys)
    assert "clip.txt: reference transcript is not UTF-8 text" in line


def test_model_commands_report_bad_packages_and_folders_in_one_line(tmp_path, corrupt_package, empty_dir, capsys):
    argv = ["--librispeech", str(_corpus(tmp_path)), "--package", str(corrupt_package)]
    assert "corrupt.sasp: header is not valid package JSON" in _run("model.evaluate", argv, capsys)
    synth = tmp_path / "not-a-set"
    (synth / "keep.txt").parent.mkdir()
    (synth / "keep.txt").write_text("mine")
    assert "is not a synthesized set" in _run("model.synth_speech", ["--out", str(synth), "--count", "1"], capsys)
    assert (synth / "keep.txt").read_text() == "mine"


# -- caches: interrupted writers leave nothing, damaged entries are rebuilt -------------------------------------


@pytest.fixture()
def fake_tts(monkeypatch):
    """TTS replaced by a tone (no flite/espeak-ng needed); ``calls`` counts the rendered sentences."""
    from model import synth_speech

    calls, fail_at = [], [0]  # fail_at[0] = n: the n-th sentence is interrupted (Ctrl-C)

    def render(text, voice):
        calls.append(text)
        if len(calls) == fail_at[0]:
            raise KeyboardInterrupt
        t = np.arange(8000) / 16000
        return (0.3 * np.sin(2 * np.pi * (200 + len(calls)) * t)).astype(np.float32)

    monkeypatch.setattr(synth_speech, "_render", render)
    monkeypatch.setattr(synth_speech, "check_tools", lambda engines=(): None)
    return calls, fail_at


def test_interrupted_synthesis_leaves_no_set(fake_tts, tmp_path):
    from model.synth_speech import is_complete_set, synthesize_set

    calls, fail_at = fake_tts
    fail_at[0] = 5
    with pytest.raises(KeyboardInterrupt):
        synthesize_set(tmp_path / "set", count=8, seed=1, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the set nor a partial folder
    fail_at[0] = 0
    synthesize_set(tmp_path / "set", count=8, seed=1, progress=False)
    assert is_complete_set(tmp_path / "set", 8, 1) and not is_complete_set(tmp_path / "set", 8, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


def test_every_cache_lives_under_sasp_cache(tmp_path, monkeypatch):
    """One cache location: $SASP_CACHE (read at each call) for packages and kernels, else ~/.cache/sasp-asr."""
    from host import emulator
    from host.cache import cache_root

    assert cache_root() == tmp_path / "cache"
    assert emulator.cache_dir() == tmp_path / "cache" / "kernels"
    from model.pipeline import DEFAULT_CACHE  # imported before this test set SASP_CACHE: still follows it

    assert Path(DEFAULT_CACHE) == tmp_path / "cache" and DEFAULT_CACHE / "calib" == tmp_path / "cache" / "calib"
    monkeypatch.delenv("SASP_CACHE")
    assert cache_root() == Path.home() / ".cache" / "sasp-asr"
    assert Path(DEFAULT_CACHE) == cache_root()


def test_demo_rebuilds_a_damaged_cached_package_under_sasp_cache(tmp_path, capsys):
    from host.asr_demo import BUILDER, code_tag, default_package

    path = tmp_path / "cache" / "packages" / f"whisper-tiny.en-8x8-dense-{code_tag(BUILDER[1])}.sasp"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00" * 100)  # e.g. left by an older version
    assert default_package(8, 0.0, "act-ls", []) == path
    assert "rebuilding the cached package" in capsys.readouterr().err
    assert load_package(path).metadata["mac_sparsity"] == 0.0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_calibration_statistics_cache(tmp_path, monkeypatch):
    from model.calibrate import CalibStats

    stats = CalibStats({"a": np.eye(3), "b": np.eye(2)}, {"a": 5, "b": 7}, {"a": np.eye(3) / 2, "b": np.eye(2) / 3})
    path = tmp_path / "calib" / "c.npz"

    def interrupted(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stats.save(path)
    monkeypatch.undo()
    assert list(path.parent.iterdir()) == []
    stats.save(path)
    assert CalibStats.load(path, ["a", "b"]).rows == {"a": 5, "b": 7}
    assert CalibStats.load(path, ["a", "b", "c"]) is None  # other layers: recomputed
    np.testing.assert_allclose(CalibStats.load(path, ["a", "b"]).folds("b")[0], np.eye(2) * 2 / 3, rtol=1e-6)
    with np.load(path) as z:
        older = {k: z[k] for k in z.files if not k.startswith("odd/")}
    with path.open("wb") as f:
        np.savez(f, **older)
    assert CalibStats.load(path, ["a", "b"]) is None  # a cache from before the folds: recomputed
    stats.save(path)
    path.write_bytes(path.read_bytes()[:50])  # damaged: recomputed
    assert CalibStats.load(path, ["a", "b"]) is None


def test_sensitivity_cache(tmp_path, monkeypatch):
    from model.export import read_sensitivity
    from model.sensitivity import RATES

    path = tmp_path / "s.json"
    good = json.dumps({"errors": {"a": [0.1] * len(RATES)}, "gains": {"a": 1.0}})
    path.write_text(good)
    assert read_sensitivity(path, ["a"]) is not None
    assert read_sensitivity(path, ["a", "b"]) is None
    path.write_text(good[:20])
    assert read_sensitivity(path, ["a"]) is None
    assert read_sensitivity(tmp_path / "missing.json", ["a"]) is None
    sens = {"errors": {"a": [0.1] * len(RATES)}, "gains": {"a": 1.0}}
    path.write_text(json.dumps({**sens, "measured": {"a": {"0.4": 0.2}}}))  # the refinement's probes
    assert read_sensitivity(path, ["a"])["measured"] == {"a": {0.4: 0.2}}
    for bad in ({"a": {"0.45": 0.2}}, {"b": {"0.4": 0.2}}, {"a": {"0.4": "x"}}, {"a": [0.2]}):
        path.write_text(json.dumps({**sens, "measured": bad}))
        assert read_sensitivity(path, ["a"]) is None, bad


# -- model.evaluate: scores what it can, names the failures, resumes from its CSV -------------------------------


def _corpus(root: Path) -> Path:
    d = root / "corpus" / "1" / "2"
    for i in range(4):
        _wav(d / f"1-2-{i:04d}.flac")
    (d / "1-2-0001.flac").write_bytes(b"not audio")  # undecodable
    _wav(d / "1-2-0002.flac", 31.0)  # longer than the 30-s window: two windows
    (d / "1-2-0003.flac").write_bytes((d / "1-2-0003.flac").read_bytes()[:100])  # truncated
    refs = {0: "HELLO WORLD", 1: "HELLO WORLD", 2: "HELLO WORLD HELLO WORLD", 3: "HELLO WORLD"}
    (d / "1-2.trans.txt").write_text("".join(f"1-2-{i:04d} {t}\n" for i, t in refs.items()))
    return root / "corpus"


def test_evaluate_scores_what_it_can_and_resumes(tmp_path, monkeypatch, capsys, hello_runtime):
    from model import evaluate

    corpus, out = _corpus(tmp_path), tmp_path / "res.csv"
    rt = hello_runtime()
    monkeypatch.setattr(evaluate, "build_runtime", lambda model, package: (rt, "fake weights"))
    argv = ["--librispeech", str(corpus), "--csv", str(out)]
    assert evaluate.main(argv) == 2
    cap = capsys.readouterr()
    assert "WER 0.00% on 2 utterances" in cap.out
    err = [line for line in cap.err.splitlines() if line.startswith("error:")]  # (and the progress bar)
    assert len(err) == 3 and "1-2-0001: cannot decode" in err[0] and "1-2-0003:" in err[1] and "2 of 4" in err[2]
    rows = list(csv.DictReader(out.open()))
    assert [r["utt_id"] for r in rows] == ["1-2-0000", "1-2-0002"] and rt.calls == 3  # 1 + 2 windows
    assert evaluate.main(argv) == 2  # the scored ones are reused, not transcribed again
    assert rt.calls == 3 and "(2 reused from" in capsys.readouterr().out
    monkeypatch.setattr(evaluate, "build_runtime", lambda model, package: (rt, "other weights"))
    assert evaluate.main(argv) == 2
    assert "holds results of another setup" in capsys.readouterr().err


def test_evaluate_resumes_a_moved_package_by_its_digest_not_its_path(tmp_path, monkeypatch, capsys, hello_runtime):
    from model import evaluate

    corpus, out = _corpus(tmp_path), tmp_path / "res.csv"
    rt = hello_runtime()
    runs = {"a/P.sasp": "sha256:59969f689c01", "b/Q.sasp": "sha256:59969f689c01", "c/P.sasp": "sha256:0123456789ab"}
    monkeypatch.setattr(evaluate, "build_runtime", lambda model, package: (rt, f"package {package} ({runs[package]})"))
    argv = ["--librispeech", str(corpus), "--csv", str(out)]
    for path in runs:
        assert evaluate.main(argv + ["--package", path]) == 2  # (two undecodable utterances)
    assert rt.calls == 3  # the copy at b/ reused a/'s rows (1 + 2 windows); c/ is another package
    cap = capsys.readouterr()
    wer = [line for line in cap.out.splitlines() if line.startswith("WER")]
    assert len(wer) == 2 and "reused" not in wer[0] and "package b/Q.sasp" in wer[1] and "(2 reused from" in wer[1]
    assert "holds results of another setup (package a/P.sasp (sha256:59969f689c01)" in cap.err


def test_evaluate_interrupted_keeps_the_scored_rows(tmp_path, monkeypatch, capsys, hello_runtime):
    from model import evaluate

    corpus, out = _corpus(tmp_path), tmp_path / "res.csv"
    for bad in ("1-2-0001.flac", "1-2-0003.flac"):
        shutil.copy(corpus / "1" / "2" / "1-2-0000.flac", corpus / "1" / "2" / bad)
    rt = hello_runtime(interrupt_at=3)
    monkeypatch.setattr(evaluate, "build_runtime", lambda model, package: (rt, "fake weights"))
    argv = ["--librispeech", str(corpus), "--csv", str(out)]
    assert evaluate.main(argv) == 130
    assert len(list(csv.DictReader(out.open()))) == 2
    rt.interrupt_at = 0
    with out.open("a") as f:
        f.write("1-2-0002,1.0,0.1")  # a row cut short by a kill: dropped and scored again
    assert evaluate.main(argv) == 0
    assert rt.calls == 6 and len(list(csv.DictReader(out.open()))) == 4  # the interrupted window, then 2 + 2 + 1
    assert "WER 0.00% on 4 utterances" in capsys.readouterr().out
