"""The loaders, the numpy Whisper runtime against the torch reference, and the dense WER on synthesized speech."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from host.audio import demo_reference, load_audio
from host.features import log_mel_spectrogram
from host.text_normalize import normalize
from host.whisper import WhisperRuntime

torch = pytest.importorskip("torch")

SYNTH_WER_LIMIT = 0.35  # measured: 26.7% dense WER on the 6-utterance synthesized set (robotic TTS voices)


def test_ct2_loader_parses_the_pip_package(whisper_weights):
    p, cfg = whisper_weights.params, whisper_weights.config
    assert cfg == {
        "n_mels": 80,
        "n_audio_ctx": 1500,
        "n_audio_state": 384,
        "n_audio_head": 6,
        "n_audio_layer": 4,
        "n_vocab": 51864,
        "n_text_ctx": 448,
        "n_text_state": 384,
        "n_text_head": 6,
        "n_text_layer": 4,
    }
    assert p["encoder.conv1.weight"].shape == (384, 80, 3)
    assert p["encoder.conv2.weight"].shape == (384, 384, 3)
    assert p["decoder.blocks.3.cross_attn.value.weight"].shape == (384, 384)
    assert p["decoder.blocks.0.mlp.0.weight"].shape == (1536, 384)
    assert not np.any(p["encoder.blocks.0.attn.key.bias"])  # Whisper's key projection has no bias
    assert all(a.dtype == np.float32 and np.all(np.isfinite(a)) for a in p.values())
    assert len(whisper_weights.vocab) == 51864 and whisper_weights.vocab[50257] == "<|startoftranscript|>"
    assert len(whisper_weights.linear_names()) == 66
    n_params = sum(a.size for a in p.values())
    assert 36e6 < n_params < 40e6  # tiny.en: 39M parameters incl. the positional tables


def test_ct2_reader_rejects_truncated_file(tmp_path):
    from host.ct2_reader import CT2FormatError, read_ct2_model
    from host.whisper_weights import default_ct2_dir

    data = (default_ct2_dir() / "model.bin").read_bytes()
    bad = tmp_path / "model.bin"
    bad.write_bytes(data[:100_000])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2_model(bad)


def test_openai_checkpoint_round_trip(tmp_path, whisper_weights):
    from model.load import load_whisper

    state = {
        k: torch.from_numpy(v.copy()).half() for k, v in whisper_weights.params.items() if not (k.endswith(".key.bias"))
    }
    path = tmp_path / "tiny.en.pt"
    torch.save({"dims": dict(whisper_weights.config), "model_state_dict": state}, path)
    loaded = load_whisper(path)
    assert loaded.config == whisper_weights.config
    for k, v in whisper_weights.params.items():
        np.testing.assert_array_equal(loaded.params[k], v, err_msg=k)


def _bad_models(tmp: Path, cfg: dict, names: list) -> dict:
    """Each kind of unreadable ``--model`` and the words its one-line error must contain."""
    import argparse

    made = {}

    def pt(name: str, obj) -> Path:
        torch.save(obj, tmp / name)
        return tmp / name

    made["garbage bytes"] = (tmp / "garbage.pt", "not a readable torch checkpoint")
    made["garbage bytes"][0].write_bytes(b"hi\n" * 10)
    whole = pt("whole.pt", {"dims": cfg, "model_state_dict": {"x": torch.zeros(4)}}).read_bytes()
    made["truncated"] = (tmp / "cut.pt", "not a readable torch checkpoint")
    made["truncated"][0].write_bytes(whole[: len(whole) // 2])
    # an arbitrary class instance can only be restored by full unpickling, which weights_only refuses
    made["pickled object"] = (pt("evil.pt", {"dims": {}, "x": argparse.Namespace(a=1)}), "UnpicklingError")
    made["no dims"] = (pt("nodims.pt", {"model_state_dict": {}}), "not an openai-whisper checkpoint")
    made["base.en dims"] = (pt("base.pt", {"dims": {**cfg, "n_audio_layer": 6}, "model_state_dict": {}}), "not tiny.en")
    made["missing tensors"] = (pt("few.pt", {"dims": cfg, "model_state_dict": {}}), "missing parameters")
    wrong = {k: torch.zeros(1) for k in names}
    made["wrong shapes"] = (pt("shapes.pt", {"dims": cfg, "model_state_dict": wrong}), "has shape (1,)")
    (tmp / "empty").mkdir()
    made["folder without model.bin"] = (tmp / "empty", "no model.bin")
    (tmp / "ct2").mkdir()
    (tmp / "ct2" / "model.bin").write_bytes(b"\0" * 64)
    made["damaged model.bin"] = (tmp / "ct2", "not a readable CTranslate2")
    made["other suffix"] = (tmp / "whole.bin", "expected a CTranslate2 model directory")
    made["other suffix"][0].write_bytes(whole)
    return made


def test_unreadable_models_are_model_errors(tmp_path, whisper_weights):
    from model.load import ModelError, load_whisper

    for kind, (path, words) in _bad_models(tmp_path, whisper_weights.config, list(whisper_weights.params)).items():
        with pytest.raises(ModelError, match=re.escape(words)) as err:
            load_whisper(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value), kind


@pytest.mark.parametrize("command", ["model.export", "model.distill", "model.rotate"])
def test_every_model_option_gives_one_error_line(tmp_path, capsys, command):
    import importlib

    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"hi\n" * 10)
    argv = {
        "model.export": ["--tile", "8", "--sparsity", "0.2", "--out", str(tmp_path / "x.sasp")],
        "model.distill": [
            "--package",
            str(tmp_path / "p.sasp"),
            "--audio",
            str(tmp_path),
            "--out",
            str(tmp_path / "d.sasp"),
        ],
        "model.rotate": ["--out", str(tmp_path / "r.pt")],
    }[command]
    assert importlib.import_module(command).main(argv + ["--model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {bad}: not a readable torch checkpoint"), err


def test_features_match_torch_stft(demo_clip, whisper_weights):
    from model.reference import TorchWhisper

    audio = load_audio(demo_clip)
    ours = log_mel_spectrogram(audio)
    ref = TorchWhisper(whisper_weights).log_mel(audio).numpy()
    assert ours.shape == (80, 3000)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_runtime_matches_torch_reference(synth_set, whisper_weights, dense_runtime):
    from model.reference import TorchWhisper

    ref = TorchWhisper(whisper_weights)
    clip = sorted(synth_set.rglob("*.flac"))[0]
    audio = load_audio(clip)
    mel = dense_runtime.features(audio)
    ours = dense_runtime.encode(mel)
    theirs = ref.encode(torch.from_numpy(mel)).numpy()
    rel = np.linalg.norm(ours - theirs) / np.linalg.norm(theirs)
    assert rel < 1e-4, rel
    tokens = dense_runtime.decode(ours).tokens
    ref_tokens = ref.greedy(
        torch.from_numpy(theirs),
        dense_runtime.tokenizer.initial_tokens(),
        dense_runtime.tokenizer.eot,
        dense_runtime._suppress,
    )
    assert tokens == ref_tokens and len(tokens) > 3


def test_demo_clip_transcribes(demo_clip, dense_runtime):
    text = dense_runtime.transcribe(load_audio(demo_clip)).text
    assert normalize(text) == normalize(demo_reference())


def test_sampling_draws_from_the_tempered_softmax_and_never_a_suppressed_token():
    """openai-whisper samples ``Categorical(logits / T)``: the draw frequencies follow ``softmax(l / T)``."""
    from host.whisper import choose_token, softmax

    logits = np.array([2.0, 1.0, 0.0, -np.inf])
    assert choose_token(logits, 0.0, None) == 0
    for temperature in (0.5, 1.0):
        rng = np.random.default_rng(1)
        draws = np.bincount([choose_token(logits, temperature, rng) for _ in range(20000)], minlength=4) / 20000
        want = softmax(logits / temperature)
        assert draws[3] == 0 and np.abs(draws - want).max() < 0.015, (temperature, draws, want)


def test_sampled_decoding_is_seeded_and_near_greedy_at_low_temperature(demo_clip, dense_runtime):
    rt = dense_runtime
    enc = rt.encode(rt.features(load_audio(demo_clip)))
    greedy = rt.decode(enc)
    assert rt.decode(enc, temperature=1e-3, rng=np.random.default_rng(0)).tokens == greedy.tokens
    hot = [rt.decode(enc, temperature=1.5, rng=np.random.default_rng(3)).tokens for _ in range(2)]
    assert hot[0] == hot[1] != greedy.tokens
    with pytest.raises(ValueError):
        rt.decode(enc, temperature=0.5)


def test_dense_wer_on_synthesized_set(synth_set, dense_runtime):
    from host.dataset import read_librispeech
    from model.evaluate import evaluate

    res = evaluate(dense_runtime, read_librispeech(synth_set), progress=False)
    assert res.utterances == 6
    assert res.wer <= SYNTH_WER_LIMIT, [(r["reference"], r["hypothesis"]) for r in res.rows if r["wer"] > 0]


def test_runtime_routes_every_weight_gemm_through_one_call(demo_clip, whisper_weights):
    from host.whisper import DenseGemm
    from host.whisper_layers import LOGITS_LAYER

    class Counting(DenseGemm):
        seen: set = set()

        def matmul(self, x, layer):
            self.seen.add(layer)
            return super().matmul(x, layer)

    gemm = Counting(whisper_weights)
    WhisperRuntime(whisper_weights, gemm).transcribe(load_audio(demo_clip))
    assert gemm.seen == set(whisper_weights.linear_names()) | {LOGITS_LAYER}


def test_stage_of_names_the_stage_that_runs_each_layer(demo_clip, whisper_weights):
    """host.whisper_layers.stage_of is the runtime stage (encode, or prefill and step) that calls each GEMM, the
    attention products offloaded to the accelerator included."""
    from host.whisper import DenseGemm
    from host.whisper_layers import stage_of

    class Staged(DenseGemm):
        stage = "encoder"
        seen: dict = {}

        def matmul(self, x, layer):
            self.seen.setdefault(layer, set()).add(self.stage)
            return super().matmul(x, layer)

        def matmul_dynamic(self, pairs, name):
            self.seen.setdefault(name, set()).add(self.stage)
            return [a @ b for a, b in pairs]

    gemm = Staged(whisper_weights)
    rt = WhisperRuntime(whisper_weights, gemm)
    audio = load_audio(demo_clip)
    encoded = rt.encode(rt.features(audio), rt.audio_ctx(len(audio)))
    gemm.stage = "decoder"
    rt.decode(encoded, max_tokens=3)
    assert "encoder.blocks.0.attn.qk" in gemm.seen and "decoder.blocks.0.cross_attn.key" in gemm.seen
    assert {layer: {stage_of(layer)} for layer in gemm.seen} == gemm.seen


def test_layer_rows_are_the_runtime_rows(demo_clip, whisper_weights):
    """host.whisper_layers' rows per 30-s window are the rows the runtime gives each encoder-side GEMM; decoder
    GEMMs run on at most the prompt at once (the PYNQ backend's planning count)."""
    from host.pynq_backend import MAX_ROWS_DECODER
    from host.whisper import DenseGemm
    from host.whisper_layers import layer_rows, row_unit

    class Rows(DenseGemm):
        rows: dict = {}

        def matmul(self, x, layer):
            self.rows.setdefault(layer, set()).add(x.shape[0])
            return super().matmul(x, layer)

    gemm = Rows(whisper_weights)
    WhisperRuntime(whisper_weights, gemm).transcribe(load_audio(demo_clip))
    for layer, rows in gemm.rows.items():
        if row_unit(layer) == "token":
            assert max(rows) <= MAX_ROWS_DECODER, layer
        else:
            assert rows == {layer_rows(layer)}, layer


def test_torch_greedy_computes_cross_attention_keys_once_and_decodes_as_the_full_prefix(
    synth_set, whisper_weights, dense_runtime
):
    from model.reference import TorchWhisper

    ref = TorchWhisper(whisper_weights)
    audio = load_audio(sorted(synth_set.rglob("*.flac"))[0])
    enc = ref.encode(torch.from_numpy(dense_runtime.features(audio)))
    prompt, eot, sup = dense_runtime.tokenizer.initial_tokens(), dense_runtime.tokenizer.eot, dense_runtime._suppress
    names = []
    lin = ref._lin
    ref._lin = lambda x, name: names.append(name) or lin(x, name)
    tokens = ref.greedy(enc, prompt, eot, sup)
    ref._lin = lin
    assert names.count("decoder.blocks.0.cross_attn.key") == 1
    assert names.count("decoder.blocks.0.cross_attn.query") == len(tokens) + 1
    out = []  # the uncached decode: every step runs the whole prefix and projects every position
    while True:
        logits = ref.logits(prompt + out, enc)[-1].double()
        logits[torch.from_numpy(sup)] = -np.inf
        if not out:
            logits[torch.tensor(whisper_weights.suppress_ids_begin)] = -np.inf
        if int(logits.argmax()) == eot:
            break
        out.append(int(logits.argmax()))
    assert tokens == out and len(tokens) > 3
