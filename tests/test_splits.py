"""The LibriSpeech selection / report split and its per-half WER."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from model import splits

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech" / "librispeech"


def _row(utt: str, ref: str, hyp: str) -> dict:
    return {"utt_id": utt, "reference": ref, "hypothesis": hyp}


def _write(path, rows):
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["utt_id", "reference", "hypothesis"])
        w.writeheader()
        w.writerows(rows)
    return str(path)


def test_halves_are_speaker_disjoint_and_named():
    assert not splits.HALVES["selection"] & splits.HALVES["report"]
    assert splits.group_of("103-1240-0000") == "selection"
    assert splits.group_of("1272-141231-0002") == "report"
    assert splits.group_of("10001-1001-0001") is None  # LJSpeech in the mixed set
    assert splits.group_of("19-198-0000") == "train3"  # data/librispeech-train3, outside the halves
    assert splits.group_of("237-134500-0000") == "clean12"  # data/librispeech-devtest: test-clean
    assert splits.group_of("3080-5032-0000") == "other10"  # and test-other, kept apart
    groups = list(splits.GROUPS.values())
    assert sum(map(len, groups)) == len(set().union(*groups))  # no speaker in two groups


@pytest.mark.skipif(not SPEECH.is_dir(), reason="shared/speech not available")
def test_every_genuine_librispeech_utterance_has_a_half():
    ids = [p.stem for p in SPEECH.rglob("*.flac")]
    assert len(ids) >= 20
    halves = [splits.group_of(i) for i in ids]
    assert None not in halves
    assert 10 <= halves.count("selection") <= 16 and 10 <= halves.count("report") <= 16


def test_wer_by_half_is_the_corpus_wer_of_each_half():
    rows = [
        _row("103-1-0", "a b c d", "a b c d"),
        _row("61-1-0", "e f", "e x"),  # selection: 1 error in 6 words
        _row("1272-1-0", "g h i", "g"),  # report: 2 deletions in 3 words
        _row("10001-1-1", "j", "k"),  # in neither half
        _row("26-495-0000", "l m n o", "l m n"),  # train3: 1 deletion in 4 words
    ]
    h = splits.wer_by_half(rows)
    assert h["train3"]["wer"] == pytest.approx(1 / 4) and h["train3"]["utterances"] == 1
    assert h["selection"]["wer"] == pytest.approx(1 / 6)
    assert h["selection"]["utterances"] == 2
    assert h["report"]["wer"] == pytest.approx(2 / 3)
    lo, hi = h["selection"]["interval"]
    assert 0 <= lo <= 1 / 6 <= hi <= 0.5  # resamples: 0/4, 1/6 or 1/2 ... of the two utterances
    assert h["report"]["interval"] == [pytest.approx(2 / 3), pytest.approx(2 / 3)]  # one utterance: no spread


def test_cli_prints_both_halves_and_rejects_a_foreign_csv(tmp_path, capsys):
    good = tmp_path / "eval.csv"
    _write(good, [_row("103-1-0", "a b", "a b"), _row("1272-1-0", "c d", "c")])
    assert splits.main(["--csv", str(good)]) == 0
    out = capsys.readouterr().out
    assert "selection 0.00%" in out and "report 50.00%" in out
    bad = tmp_path / "other.csv"
    bad.write_text("utt_id,wer\nx,0\n")
    assert splits.main(["--csv", str(bad)]) == 2
    assert "not a model.evaluate CSV" in capsys.readouterr().err
    binary = tmp_path / "package.sasp"  # a package given where its CSV belongs: one line, exit 2
    binary.write_bytes(b"\xa8\x00PK\x03\x04" * 8)
    assert splits.main(["--csv", str(good), "--base", str(binary)]) == 2
    assert "package.sasp: not a model.evaluate CSV (UnicodeDecodeError)" in capsys.readouterr().err


def test_points_over_a_base_have_a_paired_interval_that_cancels_what_both_share():
    """Two packages that differ in one word of one utterance: the points over the base are that word, and the
    paired interval stays near it although the halves' own intervals are wide (one utterance is hard for both)."""
    hard = " ".join(f"w{i}" for i in range(20))
    base = [_row(f"103-1-{i}", "a b c d e", "a b c d e") for i in range(5)] + [_row("103-1-9", hard, "x")]
    rows = [dict(r) for r in base]
    rows[0] = _row("103-1-0", "a b c d e", "a b c d x")  # one substitution more than the base
    d = splits.dwer_by_half(rows, base)["selection"]
    assert d["points"] == pytest.approx(100 / 45) and d["utterances"] == 6
    assert d["changed"] == pytest.approx(1 / 26)  # one word of the base's 5 * 5 + 1 transcript words
    lo, hi = d["interval"]
    assert 0.0 <= lo <= hi <= 100 / 5  # never below zero: the package is worse or equal on every draw
    own = splits.wer_by_half(rows)["selection"]["interval"]
    assert 100 * (own[1] - own[0]) > 5 * (hi - lo)  # the shared hard utterance widens each half's own interval
    with pytest.raises(splits.cli.UserError, match="no row for 103-1-0"):
        splits.dwer_by_half(rows, base[1:])
    with pytest.raises(splits.cli.UserError, match="other references"):
        splits.dwer_by_half(rows, [_row(r["utt_id"], r["reference"] + " z", r["hypothesis"]) for r in base])


def test_cli_prints_the_points_over_a_base(tmp_path, capsys):
    base = _write(tmp_path / "base.csv", [_row("1272-1-0", "c d", "c d")])
    assert splits.main(["--csv", _write(tmp_path / "pkg.csv", [_row("1272-1-0", "c d", "c")]), "--base", base]) == 0
    out = capsys.readouterr().out
    assert (
        "over base.csv: report +50.00 pts (90% paired bootstrap +50.0 to +50.0; 1 word errors against the base's 0 "
        "of 2 words), 50.0% of its words changed" in out
    )


def test_one_package_on_three_folders_is_pooled_over_the_unseen_clean_groups(tmp_path, capsys):
    """--together reads a package's CSVs as one: each group, then the pool of report + train3 + clean12 (here
    2 + 1 added errors in 4 + 4 + 2 words; the selection and other10 rows stay out of it) and the selection pool
    of the selection half and other10 (1 + 1 errors in 1 + 1 words)."""
    d, p = tmp_path / "dense", tmp_path / "pkg"
    d.mkdir(), p.mkdir()
    refs = {"1272-1-0": "a b c d", "19-198-0000": "e f g h", "237-134500-0000": "i j", "103-1-0": "k", "367-1-0": "l"}
    hyps = {"1272-1-0": "a b", "19-198-0000": "e f g", "237-134500-0000": "i j", "103-1-0": "x", "367-1-0": "y"}
    for folder, ids in (
        ("halves", ["1272-1-0", "103-1-0"]),
        ("train3", ["19-198-0000"]),
        ("dt", ["237-134500-0000", "367-1-0"]),
    ):
        _write(d / f"{folder}.csv", [_row(i, refs[i], refs[i]) for i in ids])
        _write(p / f"{folder}.csv", [_row(i, refs[i], hyps[i]) for i in ids])
    names = ["halves", "train3", "dt"]
    argv = [
        "--together",
        "--csv",
        *(str(p / f"{n}.csv") for n in names),
        "--base",
        *(str(d / f"{n}.csv") for n in names),
    ]
    assert splits.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # one package, one line
    assert "unseen clean +30.00 pts" in out and "other10 +100.00 pts" in out and "report +50.00 pts" in out
    assert "selection + other10 +100.00 pts" in out
    rows = splits.read_many([p / "halves.csv", p / "train3.csv"])
    assert "unseen clean" in splits.wer_by_half(rows)  # report and train3: two of the pool's groups
    assert "unseen clean" not in splits.wer_by_half(splits.read_rows(p / "halves.csv"))  # the report half alone
    assert splits.main(["--together", "--csv", str(p / "dt.csv"), str(p / "dt.csv")]) == 2
    assert "237-134500-0000 is in more than one of" in capsys.readouterr().err


def test_words_changed_reads_the_transcripts_not_the_references():
    """A package that fixes the base's error and one that repeats it score differently against the reference,
    but each changes what the base said by the same count of words."""
    base = [_row("103-1-0", "a b c d", "a b x d")]
    fixed = splits.dwer_by_half([_row("103-1-0", "a b c d", "a b c d")], base)["selection"]
    other = splits.dwer_by_half([_row("103-1-0", "a b c d", "a b y d")], base)["selection"]
    assert fixed["changed"] == other["changed"] == pytest.approx(1 / 4)
    assert fixed["points"] == pytest.approx(-25.0) and other["points"] == pytest.approx(0.0)
    same = splits.dwer_by_half(base, base)["selection"]
    assert same["changed"] == 0.0


def test_word_errors_count_edits_per_reference_word_and_an_empty_reference_as_insertions():
    from model.splits import word_errors

    assert word_errors("a b c", "a x c d") == (2, 3)  # one substitution, one insertion
    assert word_errors("", "two words") == (2, 0)  # jiwer refuses an empty reference


def test_a_groups_interval_does_not_depend_on_the_other_groups_read_with_it():
    """Each group resamples from a stream of its own: reading the report half alone or after the selection half
    gives it the same interval (with one shared stream, the selection half's draws came first and moved it)."""
    words = [f"w{j}" for j in range(12)]
    report = [  # 40 utterances of 3 to 11 words with 0 to 3 substitutions: intervals with many possible ends
        _row(f"1272-1-{i}", " ".join(words[: 3 + i % 9]), " ".join(["x"] * (i % 4) + words[i % 4 : 3 + i % 9]))
        for i in range(40)
    ]
    selection = [_row(f"103-1-{i}", "e f g", "e f" if i % 2 else "e f g") for i in range(7)]
    alone = splits.wer_by_half(report)["report"]["interval"]
    assert splits.wer_by_half(selection + report)["report"]["interval"] == alone
    assert splits.dwer_by_half(selection + report, selection + report)["report"]["interval"] == [0.0, 0.0]
    base = [dict(r, hypothesis=r["reference"]) for r in selection + report]
    paired = splits.dwer_by_half(selection + report, base)["report"]["interval"]
    assert paired == splits.dwer_by_half(report, base)["report"]["interval"] and paired[1] > paired[0]


def test_a_reading_with_part_of_a_groups_utterances_is_refused(tmp_path, capsys):
    """A CSV that model.evaluate is still writing (it appends row by row) must not read as a smaller WER: a group
    the package's rows have needs all of the base's utterances of that group."""
    base = [_row(f"19-1-{i}", "a b c", "a b c") for i in range(4)] + [_row("103-1-0", "d e", "d e")]
    rows = [_row(f"19-1-{i}", "a b c", "a x c") for i in range(3)]  # 3 of train3's 4: unfinished
    with pytest.raises(splits.cli.UserError, match="train3: 3 of the base's 4 utterances"):
        splits.dwer_by_half(rows, base)
    assert splits.dwer_by_half(rows + [dict(base[3])], base)["train3"]["utterances"] == 4  # a group the rows lack: fine
    csv_rows, csv_base = _write(tmp_path / "p.csv", rows), _write(tmp_path / "d.csv", base)
    assert splits.main(["--csv", csv_rows, "--base", csv_base]) == 2
    assert "not finished" in capsys.readouterr().err


def test_points_per_speaker_split_a_groups_points_by_voice(tmp_path, capsys):
    """--speakers: the report half's points come apart by speaker (1272: one error in 4 words; 3853: none), each in
    its group, in GROUPS' order; the group checks hold per speaker too, and a base is needed."""
    base = [_row("1272-1-0", "a b c d", "a b c d"), _row("3853-1-0", "e f", "e f"), _row("103-1-0", "g", "g")]
    rows = [_row("1272-1-0", "a b c d", "a b c x"), _row("3853-1-0", "e f", "e f"), _row("103-1-0", "g", "g")]
    per = splits.dwer_by_speaker(rows, base)
    assert list(per) == ["103", "1272", "3853"]  # selection first, then report by speaker
    assert per["1272"]["group"] == "report" and per["1272"]["points"] == pytest.approx(25.0)
    assert per["1272"]["words"] == 4 and per["3853"]["points"] == 0.0
    assert splits.dwer_by_half(rows, base)["report"]["points"] == pytest.approx(100 / 6)  # the group: 1 in 6
    with pytest.raises(splits.cli.UserError, match="1 of the base's 2"):
        splits.dwer_by_speaker(rows[:1] + rows[2:], base)  # part of the report half: refused as for the groups
    pkg, dense = _write(tmp_path / "pkg.csv", rows), _write(tmp_path / "dense.csv", base)
    assert splits.main(["--csv", pkg, "--base", dense, "--speakers"]) == 0
    out = capsys.readouterr().out
    assert "  speaker 1272 (report, 1 utt, 4 words): +25.00 pts" in out
    assert "speakers with at least" not in out  # no speaker here has the words for the spread
    assert splits.main(["--csv", pkg, "--speakers"]) == 2
    long = " ".join(["w"] * splits.SPEAKER_WORDS)
    base.append(_row("19-198-0000", long, long))
    rows.append(_row("19-198-0000", long, " ".join(["w"] * (splits.SPEAKER_WORDS - 2))))
    _write(tmp_path / "pkg.csv", rows), _write(tmp_path / "dense.csv", base)
    assert splits.main(["--csv", pkg, "--base", dense, "--speakers"]) == 0
    assert "  1 speakers with at least 100 words: median +2.00 pts" in capsys.readouterr().out  # 19 alone counts
