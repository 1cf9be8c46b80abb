"""model.divergence: a package's output against the dense model's, without labels."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from model.divergence import main, window_divergence


def test_window_divergence():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 12))
    same = window_divergence(a, a)
    assert same.kl == pytest.approx(0.0, abs=1e-12) and same.disagree == 0.0
    b = a.copy()
    b[2, a[2].argmax()] -= 100.0  # position 2 loses its top token
    d = window_divergence(a, b)
    assert d.kl > 0 and d.disagree == pytest.approx(1 / 5)


def test_cli_scores_packages_against_the_base(tmp_path, demo_clip, dense_package8, pruned_package8, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(demo_clip, audio / demo_clip.name)
    out = tmp_path / "div.csv"
    args = ["--base", str(dense_package8), "--audio", str(audio), "--csv", str(out)]
    assert main([*args, "--package", str(dense_package8), str(pruned_package8)]) == 0
    rows = list(csv.DictReader(out.open()))
    kl = {r["package"]: float(r["kl"]) for r in rows}
    assert kl[str(dense_package8)] == 0.0 and kl[str(pruned_package8)] > 0.01
    assert "top-1 disagreement" in capsys.readouterr().out
    assert main([*args[:2], "--package", str(pruned_package8), "--audio", str(tmp_path / "none")]) == 2
    assert main([*args[:2], "--package", str(pruned_package8), "--audio", str(audio), "--half", "report"]) == 2


def test_word_edits_are_counted_on_normalized_text_and_an_empty_base_counts_insertions():
    from model.divergence import word_edits

    assert word_edits("The cat sat on the mat.", "the cat sat on a mat") == (1, 6)
    assert word_edits("Hello, world!", "hello world") == (0, 2)
    assert word_edits("", "two words") == (2, 0)


def test_decode_counts_the_words_each_package_changes_in_its_own_transcript(
    tmp_path, demo_clip, dense_package8, pruned_package8, capsys
):
    from host.longform import load_windows, transcribe_window
    from host.package import load_package
    from host.session import runtime_from_package
    from model.divergence import word_edits

    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(demo_clip, audio / demo_clip.name)
    out = tmp_path / "div.csv"
    pkgs = [str(dense_package8), str(pruned_package8)]
    args = ["--base", pkgs[0], "--audio", str(audio), "--csv", str(out), "--decode", "--package", *pkgs]
    assert main(args) == 0
    rows = {r["package"]: r for r in csv.DictReader(out.open())}
    assert rows[pkgs[0]]["edits"] == "0" and int(rows[pkgs[0]]["base_words"]) > 3  # the base against itself
    (window,) = load_windows(demo_clip)
    said = [transcribe_window(runtime_from_package(load_package(p)), window, 0.0, trim=True).text for p in pkgs]
    want = word_edits(*said)
    assert want[0] > 0  # magnitude pruning changes the demo clip's transcript: the package transcribes its own
    assert (int(rows[pkgs[1]]["edits"]), int(rows[pkgs[1]]["base_words"])) == want
    assert "words changed from the base's transcripts 0.00%" in capsys.readouterr().out
