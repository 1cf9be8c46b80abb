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
