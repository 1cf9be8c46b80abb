"""benchmarks/pruning_table.py on the synthesized set with a tiny random Whisper-shaped model (test_sweep's): one
tile, dense and 30% uniform magnitude pruning, one utterance: rows with WER and modeled speedups, resumable."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_sweep import audio_whisper

from host.boards import board_for_array
from host.package import load_package

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def pruning_table(monkeypatch):
    import model.load

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(model.load, "load_whisper", lambda source=None: audio_whisper())
    import pruning_table

    return pruning_table


def test_rows_carry_wer_and_modeled_speedup_and_resume(pruning_table, synth_set, tmp_path):
    out, packages = tmp_path / "pruning.csv", tmp_path / "packages"
    argv = [
        "--calib", str(synth_set), "--eval", f"synth={synth_set}", "--tiles", "8", "--sparsity", "0", "0.3",
        "--methods", "magnitude", "--uniform", "--layers", r"^encoder\.blocks\.", "--limit", "1",
        "--packages", str(packages), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    pruning_table.main(argv)
    rows = list(csv.DictReader(out.open()))
    assert [(r["tile"], r["method"], r["target"]) for r in rows] == [
        ("8", "magnitude", "0.00"),
        ("8", "magnitude", "0.30"),
    ]
    dense, pruned = rows
    assert float(dense["mac_sparsity"]) == 0.0 and float(pruned["mac_sparsity"]) == pytest.approx(0.3, abs=0.05)
    for r in rows:
        assert r["board"] == board_for_array(8)
        assert float(r["wer_synth"]) >= 0.0  # jiwer's WER of the one utterance, in percent
        assert 1.0 <= float(r["modeled_speedup"]) <= float(r["modeled_ceiling"])
    assert float(dense["modeled_speedup"]) == pytest.approx(1.0)
    export = load_package(packages / "t8-magnitude-s0.30.sasp").metadata["export"]
    assert export["uniform"] is True and export["prunable"] == r"^encoder\.blocks\." and export["sparsity"] == 0.3
    pruning_table.main(argv)  # every row is done: nothing is added
    assert len(list(csv.DictReader(out.open()))) == 2
