"""The bundled labelled report sets (data/librispeech-train3, data/librispeech-devtest) score packages only: every
utterance has its transcript, their speakers are model.splits' groups, and none of them is in the halves or in the
bundled calibration and statistics audio."""

from __future__ import annotations

from pathlib import Path

import pytest

from host.audio import CALIB_DIR, STATS_DIR
from host.dataset import list_audio_files, read_librispeech
from model.splits import GROUPS

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
