"""WER scored with either normalizer from the raw texts of a model.evaluate CSV."""

from __future__ import annotations

import pytest

from model.splits import wer_by_half
from model.wer import normalizer, rescore

pytest.importorskip("whisper_normalizer")


def test_whisper_normalizer_expands_contractions_and_writes_digits():
    norm = normalizer("whisper")
    assert norm("I didn't see twenty five of them, Mrs. Lynde.") == "i did not see 25 of them missus lynde"
    assert normalizer("project")("I didn't see twenty five of them, Mrs. Lynde.") == (
        "i didn't see twenty five of them missus lynde"
    )


def test_rescore_uses_the_raw_texts_with_the_chosen_normalizer():
    rows = [
        {"utt_id": "103-1-0", "raw_hypothesis": "He did not come.", "reference": "x", "hypothesis": "x"},
        {"utt_id": "1272-1-0", "raw_hypothesis": "Seven ships sailed.", "reference": "x", "hypothesis": "x"},
    ]
    refs = {"103-1-0": "HE DIDN'T COME", "1272-1-0": "SEVEN SHIPS SAILED"}
    project = wer_by_half(rescore(rows, refs, "project"))
    whisper = wer_by_half(rescore(rows, refs, "whisper"))
    assert project["selection"]["wer"] == pytest.approx(2 / 3)  # "didn't" vs "did not": one sub, one insertion
    assert whisper["selection"]["wer"] == 0.0
    assert project["report"]["wer"] == whisper["report"]["wer"] == 0.0


def test_unknown_utterance_and_normalizer_are_clear_errors():
    from host.cli import UserError

    with pytest.raises(UserError, match="not in the LibriSpeech folder"):
        rescore([{"utt_id": "9-9-9", "raw_hypothesis": "a"}], {}, "project")
    with pytest.raises(ValueError, match="unknown normalizer"):
        normalizer("nltk")


def _librispeech(root, utts):
    """A LibriSpeech-layout folder: one chapter per speaker, 0.5 s of silence per utterance."""
    import numpy as np
    import soundfile as sf

    for utt, text in utts.items():
        spk, chapter, _ = utt.split("-")
        d = root / spk / chapter
        d.mkdir(parents=True, exist_ok=True)
        sf.write(str(d / f"{utt}.flac"), np.zeros(8000, np.float32), 16000)
        with open(d / f"{spk}-{chapter}.trans.txt", "a") as f:
            f.write(f"{utt} {text}\n")
    return root


def test_cli_scores_both_halves_and_refuses_csvs_it_cannot_rescore(tmp_path, capsys):
    from model.wer import main

    ls = _librispeech(tmp_path / "ls", {"103-1-0": "HE DIDN'T COME", "1272-1-0": "SEVEN SHIPS"})
    good = tmp_path / "eval.csv"
    good.write_text(
        "utt_id,reference,hypothesis,raw_hypothesis\n103-1-0,x,x,He did not come.\n1272-1-0,x,x,Seven ships.\n"
    )
    assert main(["--csv", str(good), "--librispeech", str(ls)]) == 0
    out = capsys.readouterr().out
    assert "[project]: selection 66.67%" in out and "[whisper]: selection 0.00%" in out
    old = tmp_path / "old.csv"  # an evaluation CSV without the transcript before normalization
    old.write_text("utt_id,reference,hypothesis\n103-1-0,he didn't come,he did not come\n")
    assert main(["--csv", str(old), "--librispeech", str(ls)]) == 2
    err = capsys.readouterr().err
    assert "no raw_hypothesis column" in err and len(err.strip().splitlines()) == 1
    foreign = tmp_path / "foreign.csv"  # utterances outside the split
    foreign.write_text("utt_id,reference,hypothesis,raw_hypothesis\n9-9-9,x,x,a\n")
    assert main(["--csv", str(foreign), "--librispeech", str(_librispeech(tmp_path / "l2", {"9-9-9": "A"}))]) == 2
    assert "none of its utterances is in the LibriSpeech split" in capsys.readouterr().err
