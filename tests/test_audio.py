"""host.audio: loading, downmix, resampling, and a clear error for each kind of bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from host.audio import (
    DEMO_CLIP,
    SAMPLE_RATE,
    AudioDecodeError,
    AudioEmptyError,
    AudioError,
    AudioFileNotFoundError,
    AudioNonFiniteError,
    AudioTooLongError,
    AudioTooShortError,
    demo_reference,
    load_audio,
    prepare_audio,
    split_chunks,
)


def _sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    return float(np.fft.rfftfreq(x.shape[0], 1.0 / rate)[np.argmax(spec)])


@pytest.mark.parametrize(("rate", "freq"), [(44_100, 440.0), (8_000, 1_000.0), (48_000, 3_000.0), (22_050, 250.0)])
def test_resample_to_16k_keeps_length_and_pitch(tmp_path, rate, freq):
    path = tmp_path / f"sine_{rate}.wav"
    sf.write(str(path), _sine(freq, rate, 1.0), rate, subtype="PCM_16")
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert x.shape[0] == SAMPLE_RATE  # exactly 1 s at 16 kHz
    assert _peak_hz(x) == pytest.approx(freq, abs=2.0)
    # The resampled tone keeps its amplitude (0.5) away from the filter's edge effects.
    assert np.max(np.abs(x[1000:-1000])) == pytest.approx(0.5, abs=0.01)


def test_16k_input_passes_through_unchanged():
    x = _sine(440.0, SAMPLE_RATE, 0.5)
    y = prepare_audio(x, SAMPLE_RATE)
    np.testing.assert_array_equal(x, y)


def test_integer_pcm_is_normalized(tmp_path):
    path = tmp_path / "int16.wav"
    pcm = np.full(SAMPLE_RATE // 2, -16384, dtype=np.int16)  # -0.5 full scale
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path), -0.5)
    np.testing.assert_allclose(prepare_audio(pcm, SAMPLE_RATE), -0.5)
    u8 = np.full(SAMPLE_RATE // 2, 192, dtype=np.uint8)
    np.testing.assert_allclose(prepare_audio(u8, SAMPLE_RATE), 0.5)


def test_stereo_is_downmixed_by_averaging(tmp_path):
    left = _sine(300.0, 44_100, 1.0, amp=0.6)
    right = np.full_like(left, 0.2)
    path = tmp_path / "stereo.flac"
    sf.write(str(path), np.stack([left, right], axis=1), 44_100, subtype="PCM_24")
    x = load_audio(path)
    assert x.ndim == 1 and x.shape[0] == SAMPLE_RATE
    assert float(np.mean(x[1000:-1000])) == pytest.approx(0.1, abs=0.01)  # (sine + 0.2) / 2 has mean 0.1
    assert _peak_hz(x - x.mean()) == pytest.approx(300.0, abs=2.0)
    # In memory, (frames, channels) and the plainly channels-first layout give the same result.
    both = np.stack([left, right], axis=1)
    np.testing.assert_allclose(prepare_audio(both, 44_100), prepare_audio(both.T, 44_100))


def test_multichannel_and_opposite_phase(tmp_path):
    s = _sine(500.0, SAMPLE_RATE, 1.0)
    x = prepare_audio(np.stack([s, -s, s, -s], axis=1), SAMPLE_RATE)
    np.testing.assert_allclose(x, 0.0, atol=1e-7)


def test_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros(SAMPLE_RATE, dtype=np.int16), SAMPLE_RATE)
    x = load_audio(path)
    assert x.shape == (SAMPLE_RATE,) and not x.any()


def test_errors_are_value_errors():
    for cls in (
        AudioFileNotFoundError,
        AudioDecodeError,
        AudioEmptyError,
        AudioTooShortError,
        AudioNonFiniteError,
        AudioTooLongError,
    ):
        assert issubclass(cls, AudioError) and issubclass(cls, ValueError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioFileNotFoundError, match=r"not found: .*nope\.wav"):
        load_audio(path)
    with pytest.raises(FileNotFoundError):  # also catchable as the built-in
        load_audio(str(path))
    with pytest.raises(AudioFileNotFoundError, match="not a regular file"):
        load_audio(tmp_path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioDecodeError, match=r"cannot decode audio file .*garbage\.wav"):
        load_audio(path)


def test_truncated_flac(tmp_path):
    good = tmp_path / "good.flac"
    sf.write(str(good), _sine(440.0, SAMPLE_RATE, 2.0), SAMPLE_RATE)
    bad = tmp_path / "cut.flac"
    bad.write_bytes(good.read_bytes()[:30])  # header cut short
    with pytest.raises(AudioError, match=r"cut\.flac"):
        load_audio(bad)


def test_empty_files(tmp_path):
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(AudioEmptyError, match=r"empty \(0 bytes\): .*zero\.wav"):
        load_audio(zero_bytes)
    no_frames = tmp_path / "noframes.wav"
    sf.write(str(no_frames), np.zeros(0, dtype=np.float32), SAMPLE_RATE)
    with pytest.raises(AudioEmptyError, match=r"noframes\.wav: audio is empty \(0 samples\)"):
        load_audio(no_frames)
    with pytest.raises(AudioEmptyError):
        prepare_audio(np.zeros(0, dtype=np.float32), SAMPLE_RATE)


def test_too_short(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(str(path), _sine(440.0, 44_100, 0.05), 44_100)
    with pytest.raises(AudioTooShortError, match=r"blip\.wav: audio is too short \(0\.050 s"):
        load_audio(path)
    assert prepare_audio(np.zeros(1600, dtype=np.float32), SAMPLE_RATE).shape == (1600,)  # exactly 0.1 s


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(bad):
    x = _sine(440.0, SAMPLE_RATE, 1.0)
    x[123] = bad
    with pytest.raises(AudioNonFiniteError, match=r"my-buffer: audio contains \d+ NaN and \d+ Inf samples"):
        prepare_audio(x, SAMPLE_RATE, source="my-buffer")


def test_non_finite_samples_in_float_wav(tmp_path):
    path = tmp_path / "nan.wav"
    x = _sine(440.0, SAMPLE_RATE, 1.0)
    x[10:20] = np.nan
    sf.write(str(path), x, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioNonFiniteError, match=r"nan\.wav: audio contains 10 NaN and 0 Inf"):
        load_audio(path)


def test_too_long_and_chunking(tmp_path):
    path = tmp_path / "long.flac"
    sf.write(str(path), _sine(440.0, 8_000, 31.0, amp=0.3), 8_000)
    with pytest.raises(AudioTooLongError) as info:
        load_audio(path)
    msg = str(info.value)
    assert "long.flac" in msg and "31.00 s" in msg and "max_seconds=None" in msg

    x = load_audio(path, max_seconds=None)
    assert x.shape == (31 * SAMPLE_RATE,)
    chunks = split_chunks(x)
    assert [c.shape[0] for c in chunks] == [30 * SAMPLE_RATE, SAMPLE_RATE]
    np.testing.assert_array_equal(np.concatenate(chunks), x)
    assert [c.shape[0] for c in split_chunks(x, seconds=10.0)] == [160_000] * 3 + [16_000]
    assert split_chunks(np.zeros(0, dtype=np.float32)) == []

    # A custom limit, and exactly 30 s is still one window.
    with pytest.raises(AudioTooLongError, match=re.escape("max_seconds=5 s")):
        load_audio(path, max_seconds=5)
    assert prepare_audio(np.zeros(30 * SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE).shape == (480_000,)


def test_bad_in_memory_arguments():
    x = _sine(440.0, SAMPLE_RATE, 1.0)
    with pytest.raises(AudioError, match="sample rate"):
        prepare_audio(x, 0)
    with pytest.raises(AudioError, match="shape"):
        prepare_audio(x.reshape(2, 2, -1), SAMPLE_RATE)
    with pytest.raises(AudioError, match="dtype"):
        prepare_audio(x.astype(np.complex64), SAMPLE_RATE)


def test_output_is_clipped_to_unit_range():
    x = np.sign(_sine(1000.0, 44_100, 0.5, amp=1.0))  # full-scale square wave overshoots when resampled
    y = prepare_audio(x, 44_100)
    assert y.min() >= -1.0 and y.max() <= 1.0


def test_demo_clip(demo_clip):
    assert demo_clip == DEMO_CLIP
    info = sf.info(str(demo_clip))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert demo_clip.stat().st_size < 200_000
    x = load_audio(demo_clip)
    assert 3.0 < x.shape[0] / SAMPLE_RATE < 7.0
    ref = demo_reference()
    assert re.fullmatch(r"[A-Z' ]+", ref) and len(ref.split()) >= 6


def test_real_librispeech_files_load(real_speech_dir):
    flacs = sorted(real_speech_dir.glob("*/*/*.flac"))[:5]
    assert flacs, f"no FLAC files under {real_speech_dir}"
    for flac in flacs:
        x = load_audio(flac, max_seconds=None)
        assert x.dtype == np.float32 and x.ndim == 1
        assert x.shape[0] == sf.info(str(flac)).frames  # already 16 kHz: no resampling
        assert 0.01 < abs(x).max() <= 1.0
