"""The labelled train-clean-100 set (data/librispeech-train3) scores packages only: every utterance has its
transcript, and none of its speakers is in the halves or in the bundled calibration audio."""

from __future__ import annotations

from pathlib import Path

from host.audio import CALIB_DIR
from host.dataset import list_audio_files, read_librispeech
from model.splits import GROUPS, HALVES

TRAIN3 = Path(__file__).resolve().parents[1] / "data" / "librispeech-train3"


def test_train3_is_labelled_and_speaker_disjoint():
    utts = read_librispeech(TRAIN3)
    assert len(utts) == len(list_audio_files(TRAIN3)) == 48
    assert all(u.transcript.strip() for u in utts)
    speakers = {u.utt_id.split("-")[0] for u in utts}
    assert speakers == GROUPS["train3"]  # the data and model.splits' group agree
    calib = {f.name.split("__")[1].split("-")[0] for f in list_audio_files(CALIB_DIR)}
    assert not speakers & calib and not speakers & set().union(*HALVES.values())
    assert "CC BY 4.0" in (TRAIN3 / "README.md").read_text()
