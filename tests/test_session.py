"""host.session: one recording's record (calls, host work, counters) and its board figures."""

from __future__ import annotations

import numpy as np
import pytest

from host.driver import Accelerator
from host.package import load_package
from host.session import BoardFigures, Session, runtime_from_package
from host.whisper import WhisperRuntime


@pytest.fixture(scope="module")
def session(pruned_package8):
    pkg = load_package(pruned_package8)
    acc = Accelerator(pkg, "reference")
    yield Session(WhisperRuntime(pkg.weights, acc), acc)
    acc.close()


def test_record_holds_its_own_calls_and_counters(session, demo_clip):
    first = session.transcribe(demo_clip, trim=True)
    assert first.text and first.calls and session.acc.take_calls() == []  # the record took them
    assert first.positions == [w.encoder_positions for w in first.windows if w.encoder_positions]
    assert first.stats.total().calls == len(first.calls)
    assert first.backend_s["encoder"] > 0 and first.backend_s["decoder"] > 0
    second = session.transcribe(demo_clip, trim=True)  # starts afresh: nothing of the first run carried over
    assert second.calls == first.calls and second.stats.total().calls == len(first.calls)
    assert second.text == first.text


def test_board_figures_order_pruned_dense_and_ceiling(session, demo_clip):
    fig = session.transcribe(demo_clip, trim=True).on_board("pynq-z2", 8)
    assert fig.speedup > 1.0  # 30 % of the encoder blocks' tiles are gone
    assert fig.ceiling["total_s"] < fig.pruned["total_s"] < fig.dense["total_s"]
    assert fig.max_speedup > fig.speedup
    assert fig.energy["joules"] < fig.dense_energy["joules"]


def test_silence_runs_nothing(session, tmp_path):
    import soundfile as sf

    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000 * 2, np.float32), 16000)
    rec = session.transcribe(path)
    assert rec.text == "" and rec.calls == [] and rec.positions == [] and rec.windows[0].skipped
    fig = BoardFigures(rec.calls, rec.ops, "pynq-z2", 8)
    assert fig.speedup == fig.max_speedup == 1.0


def test_a_float_runtime_records_the_transcript_alone(session, pruned_package8, demo_clip):
    """No accelerator (``model.evaluate`` without ``--package``): the longform transcript, no calls or host work;
    with one, the session defaults to the runtime's accelerator."""
    from host.audio import AudioReader
    from host.longform import iter_windows, join

    assert Session(session.runtime).acc is session.acc
    rt = runtime_from_package(load_package(pruned_package8), "float")
    rec = Session(rt).transcribe(demo_clip, trim=True)
    with AudioReader(demo_clip) as reader:
        assert rec.text == join(list(iter_windows(rt, reader, True)))
    assert rec.calls == [] and rec.ops == {} and rec.stats.total().calls == 0 and rec.positions


def test_sampled_decodes_are_charged_to_the_decoder_only(session, demo_clip, monkeypatch):
    """A window whose greedy text loops is sampled (host.longform): its host work is the greedy run in full plus
    one decoder per sample (they reuse the encoding), and its calls are the sampled decodes' too."""
    import host.longform as longform
    from host.system_model import add_ops, host_ops

    monkeypatch.setattr(longform, "NO_SPEECH_THRESHOLD", 1.0)  # this pruned model calls the full window silent
    greedy = session.transcribe(demo_clip)
    monkeypatch.setattr(longform, "FALLBACK_TEMPERATURES", (0.2,))
    monkeypatch.setattr(longform, "compression_ratio", lambda text: 3.0)  # every text "loops"
    rec = session.transcribe(demo_clip)
    (win,) = rec.windows
    assert win.samples and "every sample" in win.fallback and win.text == greedy.text
    cfg, amm = session.runtime.cfg, session.runtime.amm is not None
    want = host_ops(cfg, 1500, win.runs[0][1], amm)
    add_ops(want, {"decoder": host_ops(cfg, 1500, win.samples[0][1], amm)["decoder"]})
    assert rec.ops == want and rec.ops["encoder"] == greedy.ops["encoder"]
    assert len(rec.calls) > len(greedy.calls) and rec.calls[: len(greedy.calls)] == greedy.calls
