"""Sequential pruning (model.sequential): stage order, the cross-term solve, and a smaller error at the model's
output than pruning every layer on the dense model's activations."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_tiny_whisper

from host.whisper import DenseGemm, WhisperRuntime
from host.whisper_layers import LOGITS_LAYER
from model.calibrate import Clip, teacher_forced_pass
from model.prune import compensate, prune_layer
from model.sequential import prune_towards, sequential_prune, stages_in_order


def tiny_whisper():
    """The suite's tiny random Whisper with the special tokens greedy decoding needs."""
    from host.whisper_weights import WhisperWeights

    w = make_tiny_whisper()
    vocab = [f"t{i}" for i in range(8)] + ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>", "<|0.00|>"]
    return WhisperWeights(w.params, w.config, vocab, suppress_ids=[1], suppress_ids_begin=[0])


def tiny_clips(weights, n: int = 6):
    rng = np.random.default_rng(3)
    runtime = WhisperRuntime(weights, DenseGemm(weights))
    clips = []
    for _ in range(n):
        mel = rng.standard_normal((4, 16)).astype(np.float32)
        enc = runtime.encode(mel)
        clips.append(Clip(mel, 16, runtime.decode(enc).tokens, enc))
    return clips


def test_stages_follow_the_model_and_group_layers_reading_one_input():
    w = tiny_whisper()
    names = [n for n in DenseGemm(w).ops if n != LOGITS_LAYER]
    e, d = "encoder.blocks.0", "decoder.blocks.0"
    assert stages_in_order(w, names, tiny_clips(w, 1)[0].mel) == [
        ("encoder.conv1",),
        ("encoder.conv2",),
        (f"{e}.attn.query", f"{e}.attn.key", f"{e}.attn.value"),
        (f"{e}.attn.out",),
        (f"{e}.mlp.0",),
        (f"{e}.mlp.2",),
        (f"{d}.cross_attn.key", f"{d}.cross_attn.value"),
        (f"{d}.attn.query", f"{d}.attn.key", f"{d}.attn.value"),
        (f"{d}.attn.out",),
        (f"{d}.cross_attn.query",),
        (f"{d}.cross_attn.out",),
        (f"{d}.mlp.0",),
        (f"{d}.mlp.2",),
    ]


def test_towards_the_dense_output_on_unchanged_inputs_is_plain_compensation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 32)) @ rng.standard_normal((32, 32))
    w = rng.standard_normal((32, 16)).astype(np.float32)
    gram = x.T @ x
    got = prune_towards(w, gram, gram, (4, 4), 0.25, "act-ls", 0.01)
    np.testing.assert_allclose(got.weight, compensate(w, got.keep, gram, (4, 4)), atol=1e-4)


def test_towards_the_dense_output_absorbs_a_changed_input():
    """Inputs scaled per channel by an upstream change: fitting X_p W' to X_d W undoes it, plain compensation
    cannot see it."""
    rng = np.random.default_rng(1)
    xd = rng.standard_normal((800, 32))
    xp = xd * rng.uniform(0.5, 1.5, 32)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    seq = prune_towards(w, xp.T @ xp, xp.T @ xd, (4, 4), 0.25, "act-ls", 1e-4)
    plain = prune_layer(w, (4, 4), 0.25, "act-ls", xd.T @ xd, 1e-4)

    def err(w2):
        return np.linalg.norm(xp @ w2 - xd @ w) / np.linalg.norm(xd @ w)

    assert err(seq.weight) < 0.9 * err(plain.weight)
    unpruned = prune_towards(w, xp.T @ xp, xp.T @ xd, (4, 4), 0.0, "act-ls", 1e-4)
    assert unpruned.keep.all() and err(unpruned.weight) < 1e-3  # the scaling alone is undone exactly


@pytest.mark.parametrize("method", ["act-ls", "obs-ls"])
def test_sequential_pruning_stays_closer_to_the_dense_model(method):
    w = tiny_whisper()
    clips = tiny_clips(w)
    names = [n for n in DenseGemm(w).ops if n != LOGITS_LAYER]
    rates = {n: 0.5 for n in names}
    seq = sequential_prune(w, clips, (4, 4), rates, method)
    assert set(seq) == set(names)
    for layer in seq.values():
        assert (~layer.keep).sum() == round(0.5 * layer.keep.size)
        mask = np.repeat(np.repeat(layer.keep, 4, 0), 4, 1)[: layer.weight.shape[0], : layer.weight.shape[1]]
        assert np.all(layer.weight[~mask] == 0)

    # the one-shot alternative: every layer fitted on the dense model's own activations
    from model.calibrate import CalibStats, _RecordingGemm

    stats = CalibStats()
    rec = _RecordingGemm(w, names, stats)
    runtime = WhisperRuntime(w, rec)
    for c in clips:
        rec.valid_frames = c.frames
        teacher_forced_pass(runtime, runtime.encode(c.mel), c.tokens)
    dense = DenseGemm(w).ops
    oneshot = {n: prune_layer(dense[n][0], (4, 4), 0.5, method, stats.gram[n]) for n in names}

    def logit_error(pruned):
        gemm = DenseGemm(w)
        for n, layer in pruned.items():
            gemm.ops[n] = (layer.weight, gemm.ops[n][1])
        rt = WhisperRuntime(w, gemm)
        return sum(np.linalg.norm(teacher_forced_pass(rt, rt.encode(c.mel), c.tokens) - ref) for c, ref in refs)

    ref_rt = WhisperRuntime(w, DenseGemm(w))
    refs = [(c, teacher_forced_pass(ref_rt, c.dense_enc, c.tokens)) for c in clips]
    assert logit_error(seq) < logit_error(oneshot)


@pytest.mark.parametrize("extra", [["--method", "act"], ["--pattern", "ffn"]])
def test_export_refuses_sequential_without_free_least_squares_tiles(tmp_path, capsys, extra):
    from model.export import main

    with pytest.raises(SystemExit) as exc:
        main(["--sparsity", "0.2", "--sequential", *extra, "--out", str(tmp_path / "p.sasp")])
    assert exc.value.code == 2
    assert "--sequential: needs --pattern free" in capsys.readouterr().err


def test_calibration_statistics_are_the_dense_inputs_of_real_rows_and_greedy_transcripts(monkeypatch):
    """``collect_stats`` (through ``dense_windows``) sums ``x^T x`` of every layer's inputs in a dense encode (rows
    of real frames only) and a teacher-forced decode of the dense model's greedy transcript."""
    import model.calibrate as calibrate

    w = tiny_whisper()
    rng = np.random.default_rng(8)
    mels = [rng.standard_normal((4, 16)).astype(np.float32) for _ in range(2)]
    windows = {"a.flac": [np.full(16 * 160, 0.0), np.full(10 * 160, 1.0)]}  # 16 and 10 real mel frames
    monkeypatch.setattr(calibrate, "load_windows", lambda f: windows[f])
    monkeypatch.setattr(WhisperRuntime, "features", lambda self, audio: mels[int(audio[0])])

    class Calls(DenseGemm):
        def __init__(self):
            super().__init__(w)
            self.inputs = []

        def matmul(self, x, layer):
            self.inputs.append((layer, x))
            return super().matmul(x, layer)

    expected: dict = {}
    odd: dict = {}
    for mel, frames in zip(mels, (16, 10)):
        calls = Calls()
        runtime = WhisperRuntime(w, calls)
        enc = runtime.encode(mel)
        teacher_forced_pass(runtime, enc, WhisperRuntime(w, DenseGemm(w)).decode(enc).tokens)
        for layer, x in calls.inputs:
            on_positions = layer.startswith("encoder.") or layer.endswith(("cross_attn.key", "cross_attn.value"))
            rows = frames if layer == "encoder.conv1" else (frames + 1) // 2 if on_positions else len(x)
            x = x[:rows].astype(np.float64)
            expected[layer] = expected.get(layer, 0) + x.T @ x
            odd[layer] = x.T @ x if frames == 10 else odd.get(layer, 0)  # the second window is the odd fold
    layers = sorted(expected)
    stats = calibrate.collect_stats(w, ["a.flac"], layers, progress=False)
    for layer in layers:
        np.testing.assert_allclose(stats.gram[layer], expected[layer], rtol=1e-6, atol=1e-8, err_msg=layer)
        np.testing.assert_allclose(stats.folds(layer)[1], odd[layer], rtol=1e-6, atol=1e-8, err_msg=layer)
    clips = list(calibrate.dense_windows(w, ["a.flac"], progress=False))
    assert [c.frames for c in clips] == [16, 10]
