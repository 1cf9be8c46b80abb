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
