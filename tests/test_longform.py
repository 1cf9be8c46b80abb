"""Long recordings and silence: streaming reads, cuts at pauses, no words lost or repeated at seams, the no-speech
check (energy gate and Whisper's no-speech probability), a >30-s file through the demo's command line."""

from __future__ import annotations

import json
from types import SimpleNamespace

import jiwer
import numpy as np
import pytest
import soundfile as sf

from host.audio import AudioDecodeError, AudioReader, AudioTooShortError, load_audio
from host.dataset import Utterance, join_chapters, read_librispeech
from host.longform import (
    ENERGY_GATE_DBFS,
    FRAME,
    WINDOW_SECONDS,
    dbfs,
    frame_power,
    loudest_dbfs,
    spans,
)
from host.session import Session
from host.text_normalize import normalize

SR = 16000


def _babble(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like bursts: noise amplitude-modulated at 4 Hz (syllables) that never falls to the floor."""
    t = np.arange(int(seconds * SR)) / SR
    return (rng.standard_normal(len(t)) * 0.1 * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_reader_gives_the_same_samples_as_load_audio_span_by_span(tmp_path):
    rng = np.random.default_rng(0)
    for rate, channels in ((44100, 2), (16000, 1), (22050, 1)):
        path = tmp_path / f"a{rate}.wav"
        sf.write(str(path), (rng.standard_normal((rate * 3 + 17, channels)) * 0.2).astype(np.float32), rate, "FLOAT")
        whole = load_audio(path)
        with AudioReader(path) as reader:
            assert reader.n_samples == len(whole)
            pieces = [reader.read(i, i + 7001) for i in range(0, reader.n_samples, 7001)]
        np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-6)


def test_reader_refuses_short_and_truncated_files(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(800, np.float32), SR)
    with pytest.raises(AudioTooShortError, match="short.wav"):
        AudioReader(short)
    cut = tmp_path / "cut.flac"
    sf.write(str(cut), (np.random.default_rng(0).standard_normal(5 * SR) * 0.1).astype(np.float32), SR)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # the header still says 5 s
    with AudioReader(cut) as reader, pytest.raises(AudioDecodeError, match="cut.flac"):
        reader.read(0, reader.n_samples)


def test_windows_tile_the_recording_and_cut_in_the_longest_late_pause():
    rng = np.random.default_rng(1)
    # 22 s of babble, a 0.5-s pause, 4.5 s, a 0.1-s dip (too short to be a pause), 20 s: the cut is in the pause
    floor = lambda s: (rng.standard_normal(int(s * SR)) * 1e-3).astype(np.float32)  # noqa: E731
    x = np.concatenate([_babble(22, rng), floor(0.5), _babble(4.5, rng), floor(0.1), _babble(20, rng)])
    cuts = list(spans(len(x), lambda a, b: x[a:b]))
    assert cuts[0][0] == 0 and cuts[-1][1] == len(x)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))  # no overlap, no gap
    assert all(0 < stop - start <= WINDOW_SECONDS * SR for start, stop, _ in cuts)
    assert 22 * SR < cuts[0][1] < 22.5 * SR
    np.testing.assert_array_equal(np.concatenate([a for _, _, a in cuts]), x)
    # no pause at all: the window still ends, no earlier than 10 s and no later than 30 s
    steady = _babble(65, rng)
    ends = [stop for _, stop, _ in spans(len(steady), lambda a, b: steady[a:b])]
    assert ends[-1] == len(steady) and all(b - a >= 10 * SR for a, b in zip([0] + ends, ends[:-1]))


def test_cuts_in_a_real_chapter_fall_in_pauses(real_speech_dir):
    """LibriSpeech 103-1240 (ten consecutive utterances, 136 s): every cut has 60 ms on each side at least 20 dB
    under the loudest 200 ms of its window, i.e. it lies between words, not in one."""
    utts = [u for u in read_librispeech(real_speech_dir) if u.utt_id.startswith("103-1240-")]
    x = np.concatenate([load_audio(u.path) for u in utts])
    cuts = list(spans(len(x), lambda a, b: x[a:b]))
    assert len(cuts) >= 5
    for (_, stop, audio), (_, _, after) in zip(cuts, cuts[1:]):
        around = np.concatenate([frame_power(audio)[-3:], frame_power(after)[:3]])
        assert dbfs(around).max() < loudest_dbfs(frame_power(audio)) - 20, f"cut at {stop / SR:.2f} s"


def test_energy_gate_level():
    assert loudest_dbfs(frame_power(np.zeros(SR, np.float32))) < ENERGY_GATE_DBFS
    tone = 0.01 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR)  # -43 dBFS: above the gate
    assert loudest_dbfs(frame_power(tone)) == pytest.approx(-43.0, abs=0.1) and FRAME == 320


@pytest.fixture(scope="module")
def reference_runtime(dense_package8):
    from host.package import load_package
    from host.session import runtime_from_package

    return runtime_from_package(load_package(dense_package8), "reference")


def test_silence_and_low_noise_give_empty_transcripts(reference_runtime, tmp_path):
    rng = np.random.default_rng(2)
    cases = {
        "silence": np.zeros(5 * SR, np.float32),
        "hiss-60dBFS": (rng.standard_normal(5 * SR) * 10 ** (-60 / 20)).astype(np.float32),
        "hiss-40dBFS": (rng.standard_normal(5 * SR) * 10 ** (-40 / 20)).astype(np.float32),
    }
    reasons = {}
    for name, x in cases.items():
        path = tmp_path / f"{name}.wav"
        sf.write(str(path), x, SR, "FLOAT")
        out = Session(reference_runtime).transcribe(path)
        assert out.text == "" and len(out.windows) == 1, (name, out)
        reasons[name] = out.windows[0].skipped
    assert reasons["silence"].startswith("energy gate") and reasons["hiss-60dBFS"].startswith("energy gate")
    assert reasons["hiss-40dBFS"].startswith("no speech: no-speech probability")  # the model ran and said so


def test_join_chapters_writes_one_recording_per_chapter(tmp_path):
    utts = []
    for i, seconds in enumerate((1.0, 2.0)):
        path = tmp_path / f"7-8-{i:04d}.flac"
        sf.write(str(path), np.full(int(seconds * SR), 0.25 * (i + 1), np.float32), SR)
        utts.append(Utterance(f"7-8-{i:04d}", path, f"WORD{i}"))
    (out,) = join_chapters(utts[::-1], tmp_path / ".")
    x = load_audio(out.path, max_seconds=None)
    assert out.utt_id == "7-8" and out.transcript == "WORD0 WORD1" and len(x) == 3 * SR
    np.testing.assert_allclose(x[[0, SR - 1, SR, -1]], [0.25, 0.25, 0.5, 0.5])


def test_demo_transcribes_a_long_recording_without_seam_errors(real_speech_dir, dense_package8, tmp_path):
    """Three consecutive LibriSpeech utterances (32 s) through the demo's command line: two windows, the whole
    transcript in the report, and against the joined reference no inserted or deleted word at all (a word
    dropped or repeated at a seam would be one); the silent file next to it is reported as skipped."""
    from host import asr_demo

    chapter = {u.utt_id: u for u in read_librispeech(real_speech_dir) if u.utt_id.startswith("103-1240-")}
    parts = [chapter[f"103-1240-{i:04d}"] for i in (6, 9, 4)]
    (joined,) = join_chapters(parts, tmp_path)
    wav = tmp_path / "long.flac"
    joined.path.rename(wav)
    wav.with_suffix(".txt").write_text(joined.transcript)
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(5 * SR, np.float32), SR)
    report = tmp_path / "r.json"
    # the full window: this checks the seams, not the trimmed window (which inserts one word here)
    argv = ["--backend", "reference", "--package", str(dense_package8), "--wav", str(wav), "--wav", str(silent)]
    argv += ["--window", "full"]
    assert asr_demo.main(argv + ["--json", str(report)]) == 0
    long, quiet = json.loads(report.read_text())["utterances"]
    wins = long["windows"]
    assert long["audio_s"]["value"] > 30 and len(wins) == 2 and wins[0]["end_s"] == wins[1]["start_s"]
    assert long["transcript"] == " ".join(w["text"] for w in wins)
    assert all(w["latency"]["encoder"]["label"] == "emulated" and w["skipped"] is None for w in wins)
    words = jiwer.process_words(normalize(joined.transcript), normalize(long["transcript"]))
    assert words.deletions == 0 and words.insertions == 0, (long["transcript"], joined.transcript)
    assert long["wer"]["value"] < 0.1
    assert quiet["transcript"] == "" and quiet["windows"][0]["skipped"].startswith("energy gate")


def test_evaluate_join_chapters_scores_one_recording_per_chapter(tmp_path, monkeypatch, capsys, hello_runtime):
    from model import evaluate

    d = tmp_path / "corpus" / "1" / "2"
    d.mkdir(parents=True)
    for i in range(2):
        sf.write(str(d / f"1-2-{i:04d}.flac"), 0.3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR), SR)
    (d / "1-2.trans.txt").write_text("1-2-0000 HELLO\n1-2-0001 WORLD\n")
    rt = hello_runtime()
    monkeypatch.setattr(evaluate, "build_runtime", lambda model, package: (rt, "fake weights"))
    assert evaluate.main(["--librispeech", str(tmp_path / "corpus"), "--join-chapters"]) == 0
    out = capsys.readouterr().out
    assert "WER 0.00% on 1 recordings" in out and "chapters joined; encoder window trimmed" in out
    assert rt.calls == 1


def test_windows_of_cover_any_length_for_calibration_audio():
    """Calibration and distillation read recordings over 30 s as windows (model.calibrate, model.distill)."""
    from host.longform import windows_of

    rng = np.random.default_rng(5)
    audio = (rng.standard_normal(16000 * 70) * 0.1).astype(np.float32)
    audio[16000 * 25 : 16000 * 26] = 0.0  # a pause to cut in
    parts = windows_of(audio)
    assert len(parts) >= 3 and all(len(p) <= 16000 * 30 for p in parts)
    assert np.array_equal(np.concatenate(parts), audio)


def test_a_looping_trimmed_window_is_decoded_again_with_the_full_window():
    """openai-whisper's compression-ratio rule: a trimmed window whose text loops falls back to 30 s; both runs
    are kept for the model, the text of the second."""
    from host.longform import COMPRESSION_RATIO_THRESHOLD, compression_ratio, transcribe_window

    loop = "ten seconds " * 40
    assert compression_ratio(loop) > COMPRESSION_RATIO_THRESHOLD > compression_ratio("the buzzers were triggered")

    class Looping:
        cfg = {"n_audio_ctx": 1500}

        def __init__(self):
            self.windows = []

        def features(self, audio):
            return audio

        def audio_ctx(self, n_samples):
            return 300

        def encode(self, mel, audio_ctx=None):
            self.windows.append(audio_ctx)
            return audio_ctx

        def decode(self, enc):
            text = loop if enc == 300 else "ten seconds"
            return SimpleNamespace(text=text, tokens=[1] * len(text.split()), no_speech_prob=0.0, avg_logprob=-0.1)

    rt = Looping()
    audio = 0.1 * np.sin(np.arange(32000) / 5.0).astype(np.float32)
    win = transcribe_window(rt, audio, 0.0, trim=True)
    assert rt.windows == [300, None]
    assert win.text == "ten seconds" and win.encoder_positions == 1500
    assert win.runs == [(300, 80), (1500, 2)] and "compression ratio" in win.fallback
    rt = Looping()
    win = transcribe_window(rt, audio, 0.0, trim=False)  # the full window keeps whatever it decoded
    assert rt.windows == [None] and win.fallback is None and win.runs == [(1500, 2)]


class _LoopsWhenGreedy:
    """A runtime whose greedy text loops and whose samples loop below ``clean_from`` (a temperature)."""

    cfg = {"n_audio_ctx": 1500}
    loop = "ten seconds " * 40

    def __init__(self, clean_from: float, no_speech_prob: float = 0.0):
        self.clean_from, self.no_speech_prob, self.decodes = clean_from, no_speech_prob, []

    def features(self, audio):
        return audio

    def audio_ctx(self, n_samples):
        return 300

    def encode(self, mel, audio_ctx=None):
        return audio_ctx

    def decode(self, enc, temperature=0.0, rng=None):
        self.decodes.append((enc, temperature, rng is not None))
        text = "ten seconds" if 0 < self.clean_from <= temperature else self.loop
        return SimpleNamespace(
            text=text, tokens=[1] * len(text.split()), no_speech_prob=self.no_speech_prob, avg_logprob=-0.1
        )


def test_a_window_that_loops_in_both_windows_is_sampled_at_rising_temperatures():
    """openai-whisper's temperature fallback: after greedy loops in the trimmed and the full window, one seeded
    sample per temperature on the full window's encoding, the first text that does not loop kept."""
    from host.longform import FALLBACK_TEMPERATURES, transcribe_window

    audio = 0.1 * np.sin(np.arange(32000) / 5.0).astype(np.float32)
    rt = _LoopsWhenGreedy(clean_from=0.4)
    win = transcribe_window(rt, audio, 0.0, trim=True)
    assert rt.decodes == [(300, 0.0, False), (None, 0.0, False), (None, 0.2, True), (None, 0.4, True)]
    assert win.text == "ten seconds" and win.runs == [(300, 80), (1500, 80)] and win.samples == [(0.2, 80), (0.4, 2)]
    assert "full window" in win.fallback and "temperature 0.4" in win.fallback and win.tokens == 2

    rt = _LoopsWhenGreedy(clean_from=0.0)  # every sample loops: greedy's text stays
    win = transcribe_window(rt, audio, 0.0, trim=False)
    assert [t for _, t, _ in rt.decodes] == [0.0, *FALLBACK_TEMPERATURES] and win.text == rt.loop
    assert "every sample" in win.fallback and win.runs == [(1500, 80)] and len(win.samples) == 5

    rt = _LoopsWhenGreedy(clean_from=0.2, no_speech_prob=0.9)  # openai-whisper does not retry silence
    win = transcribe_window(rt, audio, 0.0, trim=False)
    assert len(rt.decodes) == 1 and not win.samples and win.fallback is None


def test_a_phrase_said_three_times_in_a_row_is_a_loop_the_gzip_ratio_misses():
    from host.longform import COMPRESSION_RATIO_THRESHOLD, compression_ratio, loop_reason, repeated_phrase

    looped = "Oh no, I'm quite sure he didn't. Oh no, I'm quite sure he didn't. Oh no, I'm quite sure he didn't."
    assert compression_ratio(looped) < COMPRESSION_RATIO_THRESHOLD  # measured: 2.23 on the pruned model's text
    assert repeated_phrase(looped) == ("oh no i'm quite sure he didn't", 3) and "3 times" in loop_reason(looped)
    for speech in (
        "No, no, no, he said.",  # a one-word phrase
        "He said that he said that he was right.",  # two copies only
        "The buzzer's whirr triggered his muscles into complete relaxation.",
    ):
        assert repeated_phrase(speech) is None and loop_reason(speech) is None
    assert "compression ratio" in loop_reason("ten seconds " * 40)


def test_a_sentence_said_twice_sends_a_trimmed_window_to_the_full_window_only():
    """Two copies of a phrase of 6+ words (the loops distilled packages made, docs/pruning.md): the trimmed window
    is decoded again with the full one, but the sampling fallback does not start on it (its samples can be noise)."""
    from host.longform import RETRY_REPEATS, loop_reason, repeated_phrase, transcribe_window

    twice = "A golden fortune and a happy life. A golden fortune and a happy life."  # 61-70968-0002, distilled
    assert repeated_phrase(twice, RETRY_REPEATS) == ("a golden fortune and a happy life", 2)
    assert "2 times" in loop_reason(twice, RETRY_REPEATS) and loop_reason(twice) is None
    for speech in (
        "She ran the sewing circle, she ran the sewing circle and more.",  # 5 words twice
        "A golden fortune and a happy life, a golden fortune and a long one.",
    ):
        assert loop_reason(speech, RETRY_REPEATS) is None

    class SaysItTwice(_LoopsWhenGreedy):
        loop = twice

    audio = 0.1 * np.sin(np.arange(32000) / 5.0).astype(np.float32)
    rt = SaysItTwice(clean_from=0.2)
    win = transcribe_window(rt, audio, 0.0, trim=True)
    assert rt.decodes == [(300, 0.0, False), (None, 0.0, False)] and not win.samples  # full window, no samples
    assert win.text == twice and "decoded again with the full window" in win.fallback
    rt = SaysItTwice(clean_from=0.2)
    assert transcribe_window(rt, audio, 0.0, trim=False).text == twice and len(rt.decodes) == 1


class _StopsEarlyWhenTrimmed(_LoopsWhenGreedy):
    """A runtime whose trimmed window ends the text after two words (the full window says it all)."""

    full = "chapter thirty catherine's disposition was not naturally sedentary nor had her habits been ever very " * 2

    def decode(self, enc, temperature=0.0, rng=None):
        self.decodes.append((enc, temperature, rng is not None))
        text = "chapter thirty" if enc == 300 else self.full
        return SimpleNamespace(
            text=text, tokens=[1] * len(text.split()), no_speech_prob=self.no_speech_prob, avg_logprob=-0.1
        )


def test_a_trimmed_window_that_stops_early_is_decoded_again_with_the_full_window():
    """A text under SHORT_WORDS_PER_SECOND on a window of SHORT_SECONDS or more goes back to the full window; a short
    window, the full window itself, or a window the model finds silent is not retried."""
    from host.longform import early_stop_reason, transcribe_window

    assert early_stop_reason("chapter thirty", 15.0) and early_stop_reason("one two three four", 3.9) is None
    assert early_stop_reason(" ".join(["w"] * 15), 15.0) is None  # one word per second is enough
    audio = 0.1 * np.sin(np.arange(15 * 16000) / 5.0).astype(np.float32)
    rt = _StopsEarlyWhenTrimmed(clean_from=0.0)
    win = transcribe_window(rt, audio, 0.0, trim=True)
    assert rt.decodes == [(300, 0.0, False), (None, 0.0, False)] and win.text == rt.full
    assert "stopped early (2 words for 15.0 s" in win.fallback and win.encoder_positions == 1500
    rt = _StopsEarlyWhenTrimmed(clean_from=0.0)
    assert transcribe_window(rt, audio[: 3 * 16000], 0.0, trim=True).text == "chapter thirty"  # 3 s: too short
    rt = _StopsEarlyWhenTrimmed(clean_from=0.0, no_speech_prob=0.9)
    transcribe_window(rt, audio, 0.0, trim=True)
    assert len(rt.decodes) == 1  # the model finds it silent: few words are expected
    rt = _StopsEarlyWhenTrimmed(clean_from=0.0)
    rt.full = "chapter"  # the full window says less: the trimmed text stands
    win = transcribe_window(rt, audio, 0.0, trim=True)
    assert len(rt.decodes) == 2 and win.text == "chapter thirty" and win.encoder_positions == 300
    assert "the trimmed text kept" in win.fallback
    quiet_when_full = _StopsEarlyWhenTrimmed(clean_from=0.0)
    quiet_when_full.decode = lambda enc, temperature=0.0, rng=None: SimpleNamespace(
        text="chapter thirty" if enc == 300 else quiet_when_full.full,
        tokens=[1, 1],
        no_speech_prob=0.1 if enc == 300 else 0.9,  # the full window finds silence: the retry drops nothing
        avg_logprob=-2.0,
    )
    assert transcribe_window(quiet_when_full, audio, 0.0, trim=True).text == "chapter thirty"
