"""model.synth_speech: LibriSpeech layout, transcripts, audio format, durations."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from host.audio import SAMPLE_RATE, load_audio
from model import synth_speech
from model.synth_speech import (
    SENTENCES,
    VOICES,
    TTSUnavailableError,
    normalize_transcript,
    synthesize_long,
    synthesize_set,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTH_COUNT = 6  # what the synth_set fixture in conftest.py asks for
UTT_ID = re.compile(r"(\d+)-(\d+)-(\d{4})")
TRANSCRIPT = re.compile(r"[A-Z']+( [A-Z']+)*")


def _read_set(root: Path) -> dict:
    """{utt_id: (flac path, transcript)} from every *.trans.txt under root."""
    out = {}
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, text = line.split(" ", 1)
            out[utt] = (trans.parent / f"{utt}.flac", text)
    return out


def test_librispeech_layout(synth_set):
    flacs = sorted(synth_set.glob("*/*/*.flac"))
    assert len(flacs) == SYNTH_COUNT
    for flac in flacs:
        m = UTT_ID.fullmatch(flac.stem)
        assert m, flac
        speaker, chapter, _ = m.groups()
        assert flac.parent.name == chapter and flac.parent.parent.name == speaker
        assert flac.parent.parent.parent == synth_set
        assert (flac.parent / f"{speaker}-{chapter}.trans.txt").is_file()
    assert (synth_set / "SPEAKERS.TXT").is_file()
    # Every voice is its own speaker; six utterances cover six different voices.
    assert len({f.parent.parent.name for f in flacs}) == min(SYNTH_COUNT, len(VOICES))


def test_transcripts_parse(synth_set):
    utts = _read_set(synth_set)
    assert len(utts) == SYNTH_COUNT
    normalized = {normalize_transcript(s) for s in SENTENCES}
    for utt, (flac, text) in utts.items():
        assert flac.is_file(), utt
        assert TRANSCRIPT.fullmatch(text), text
        assert text in normalized
    for trans in synth_set.glob("*/*/*.trans.txt"):
        lines = trans.read_text(encoding="utf-8").splitlines()
        assert lines == sorted(lines)
        assert all(line.startswith(trans.name.replace(".trans.txt", "-")) for line in lines)


def test_audio_format_and_durations(synth_set):
    for flac in synth_set.glob("*/*/*.flac"):
        info = sf.info(str(flac))
        assert (info.format, info.subtype) == ("FLAC", "PCM_16")
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert 1.5 < info.duration < 8.0, (flac, info.duration)
        x = load_audio(flac)
        assert 0.3 < abs(x).max() <= 1.0  # speech, at a sensible level


def test_deterministic(synth_set, tmp_path):
    again = synthesize_set(tmp_path / "again", count=3, seed=0, progress=False)
    first = _read_set(synth_set)
    for utt, (_, text) in _read_set(again).items():
        # Fewer utterances with the same seed give the same first assignments.
        assert first[utt][1] == text
    other = _read_set(synthesize_set(tmp_path / "seed1", count=3, seed=1, progress=False))
    assert [t for _, t in other.values()] != [t for _, t in list(first.values())[:3]]


def test_sentence_bank():
    assert len(SENTENCES) >= 40 and len(set(SENTENCES)) == len(SENTENCES)
    for s in SENTENCES:
        assert 6 <= len(s.split()) <= 20, s
        assert not re.search(r"\d", s), s
        t = normalize_transcript(s)
        assert TRANSCRIPT.fullmatch(t) and normalize_transcript(t) == t


def test_normalize_transcript():
    assert normalize_transcript("It's a well-known fact, isn't it?") == "IT'S A WELL KNOWN FACT ISN'T IT"
    assert normalize_transcript("'Quoted' words.") == "QUOTED WORDS"
    with pytest.raises(ValueError, match="spell numbers out"):
        normalize_transcript("Route 66")


def test_synthesize_long(tmp_path):
    pytest.importorskip("shutil").which("flite") or pytest.skip("flite not installed")
    path = synthesize_long(tmp_path / "bench_5s.flac", 5.0)
    info = sf.info(str(path))
    assert info.frames == 5 * SAMPLE_RATE and info.samplerate == SAMPLE_RATE and info.channels == 1
    text = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
    assert TRANSCRIPT.fullmatch(text)
    x = load_audio(path)
    assert abs(x[: 3 * SAMPLE_RATE]).max() > 0.3  # speech first, padding after


@pytest.mark.slow
def test_synthesize_long_30s_fits_one_window(tmp_path):
    pytest.importorskip("shutil").which("flite") or pytest.skip("flite not installed")
    path = synthesize_long(tmp_path / "bench_30s.flac", 30.0, voice="flite:kal16")
    x = load_audio(path)  # default max_seconds=30 accepts it
    assert x.shape == (30 * SAMPLE_RATE,)
    text = path.with_suffix(".txt").read_text(encoding="utf-8").split()
    assert len(text) >= 50  # mostly speech, not padding


def test_missing_tools_give_install_hint(monkeypatch, tmp_path):
    monkeypatch.setattr(synth_speech.shutil, "which", lambda name: None)
    with pytest.raises(TTSUnavailableError, match="apt-get install flite espeak-ng"):
        synthesize_set(tmp_path / "x", count=1)
    with pytest.raises(TTSUnavailableError, match="flite"):
        synth_speech.synthesize("Hello there friend.", "slt", tmp_path / "x.flac")


def test_unknown_voice(tmp_path):
    with pytest.raises(ValueError, match="unknown voice"):
        synth_speech.synthesize("Hello there friend.", "flite:nobody", tmp_path / "x.flac")


def test_cli_help():
    proc = subprocess.run(
        [sys.executable, "-m", "model.synth_speech", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--out" in proc.stdout and "--count" in proc.stdout and "--seed" in proc.stdout
