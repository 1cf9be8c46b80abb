"""The bundled labelled report sets (data/librispeech-train3, data/librispeech-devtest) score packages only: every
utterance has its transcript, their speakers are model.splits' groups, and none of them is in the halves or in the
bundled calibration and statistics audio."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from host.audio import CALIB_DIR, STATS_DIR
from host.dataset import list_audio_files, read_librispeech
from model import evaluate, report_sets
from model.report_sets import REPORT_SETS
from model.splits import GROUPS, read_rows

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize(
    "folder, groups, count",
    [("librispeech-train3", ["train3"], 48), ("librispeech-devtest", ["clean12", "other10"], 130)],
)
def test_report_set_is_labelled_and_speaker_disjoint(folder, groups, count):
    root = DATA / folder
    utts = read_librispeech(root)
    assert len(utts) == len(list_audio_files(root)) == count
    assert all(u.transcript.strip() for u in utts)
    speakers = {u.utt_id.split("-")[0] for u in utts}
    assert speakers == set().union(*(GROUPS[g] for g in groups))  # the data and model.splits' groups agree
    calib = {f.name.split("__")[1].split("-")[0] for f in list_audio_files(CALIB_DIR, STATS_DIR)}
    others = set().union(*(s for g, s in GROUPS.items() if g not in groups))
    assert not speakers & calib and not speakers & others
    assert "CC BY 4.0" in (root / "README.md").read_text()


def test_each_dense_csv_scores_its_whole_set():
    assert {name for name, _, _ in report_sets.sets_to_run(None)} >= {"t3", "dt"}
    for name, folder, base in report_sets.sets_to_run(None):
        ids = {u.utt_id for u in read_librispeech(folder)}
        assert {r["utt_id"] for r in read_rows(base)} == ids, name


def test_the_dense_csvs_are_what_the_dense_package_transcribes_now(dense_package8, tmp_path):
    for name, folder, base in report_sets.sets_to_run(None):  # the first two utterances (by id) of each set
        out = tmp_path / f"{name}.csv"
        argv = ["--librispeech", str(folder), "--package", str(dense_package8), "--limit", "2", "--csv", str(out)]
        assert evaluate.main(argv) == 0
        # the scored (normalized) text; the raw one may differ in punctuation (103-1240-0001: a comma, session 60)
        theirs = {r["utt_id"]: r["hypothesis"] for r in read_rows(base)}
        ours = read_rows(out)
        assert len(ours) == 2 and all(r["hypothesis"] == theirs[r["utt_id"]] for r in ours), name


def copy_of_the_dense_csv(argv: list) -> int:
    """Stands in for ``model.evaluate.main``: the set's dense CSV as the package's."""
    folder, out = Path(argv[argv.index("--librispeech") + 1]), Path(argv[argv.index("--csv") + 1])
    shutil.copy(next(base for f, base in REPORT_SETS.values() if f == folder), out)
    return 0


def test_report_sets_evaluates_each_set_and_reads_it_over_dense(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report_sets.evaluate, "main", copy_of_the_dense_csv)
    package = tmp_path / "p.sasp"
    package.write_bytes(b"stands in")
    assert report_sets.main(["--package", str(package), "--out", str(tmp_path / "P"), "--speakers"]) == 0
    out = capsys.readouterr().out
    names = [name for name, _, _ in report_sets.sets_to_run(None)]
    assert sorted(p.name for p in tmp_path.glob("P-*.csv")) == sorted(f"P-{n}.csv" for n in names)
    assert "unseen clean +0.00 pts" in out and "other10 +0.00 pts" in out and "speaker 2414 (other10" in out
    assert "of its words changed" in out and "+0.00 pts" in out and "-0." not in out.split("over", 1)[1]


def test_report_sets_refuses_bad_options_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(report_sets.evaluate, "main", copy_of_the_dense_csv)
    package = tmp_path / "p.sasp"
    package.write_bytes(b"stands in")
    for argv, message in [
        (["--package", str(tmp_path / "none.sasp"), "--out", str(tmp_path / "P")], "no such file"),
        (["--package", str(package), "--out", str(tmp_path / "no" / "P")], "does not exist"),
        (["--package", str(package), "--out", str(tmp_path / "P"), "--halves", str(tmp_path / "x")], "no such folder"),
    ]:
        assert report_sets.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("P-*.csv"))
    t3, dt = REPORT_SETS["t3"], REPORT_SETS["dt"]
    monkeypatch.setattr(report_sets, "REPORT_SETS", {"halves": (tmp_path / "absent", t3[1]), "t3": t3, "dt": dt})
    assert report_sets.main(["--package", str(package), "--out", str(tmp_path / "P")]) == 0
    assert "the halves are left out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("P-*.csv")) == ["P-dt.csv", "P-t3.csv"]
