"""Sparse distillation keeps the tile masks, resumes exactly, and its package runs on the emulated backend."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

from host.audio import load_audio  # noqa: E402
from host.cli import UserError  # noqa: E402
from host.package import load_package  # noqa: E402
from model.distill import DistillConfig, Distiller, distill, package_keep  # noqa: E402


@pytest.fixture(scope="module")
def train_dir(synth_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    for f in sorted(synth_set.rglob("*.flac"))[:2]:
        shutil.copy(f, out / f.name)
    return out


def _layer_arrays(path, name):
    q = load_package(path).layers[name]
    return q.weights.tiles.copy(), q.scale.copy(), q.bias.copy()


def test_masks_stay_fixed_and_resume_equals_uninterrupted(pruned_package8, whisper_weights, train_dir, tmp_path):
    cfg = DistillConfig(epochs=1, lr=1e-4, max_steps=2, checkpoint_every=1)
    full = distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "full.sasp", cfg)
    before, after = load_package(pruned_package8), load_package(full)
    name = "encoder.blocks.1.mlp.0"
    for layer in before.layers:
        np.testing.assert_array_equal(package_keep(before, layer), package_keep(after, layer), err_msg=layer)
        w = after.layers[layer].weights.to_dense()
        mask = np.repeat(np.repeat(package_keep(after, layer), 8, 0), 8, 1)[: w.shape[0], : w.shape[1]]
        assert not np.any(w[~mask]), f"{layer}: pruned tile nonzero after distillation"
    assert not np.array_equal(_layer_arrays(pruned_package8, name)[0], _layer_arrays(full, name)[0])  # it trained
    # interrupted after one step (checkpoint written), then resumed to two steps
    ckpt = tmp_path / "run.ckpt"
    distill(
        pruned_package8,
        whisper_weights,
        [train_dir],
        tmp_path / "part.sasp",
        DistillConfig(epochs=1, lr=1e-4, max_steps=1, checkpoint_every=1),
        ckpt,
    )
    resumed = distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "resumed.sasp", cfg, ckpt)
    for a, b in zip(_layer_arrays(full, name), _layer_arrays(resumed, name)):
        np.testing.assert_array_equal(a, b)


def test_distilled_package_runs_on_emulated_backend(pruned_package8, whisper_weights, train_dir, tmp_path, demo_clip):
    from host.driver import Accelerator
    from host.whisper import WhisperRuntime

    out = distill(
        pruned_package8, whisper_weights, [train_dir], tmp_path / "d.sasp", DistillConfig(epochs=1, max_steps=1)
    )
    pkg = load_package(out, expect_tile=(8, 8))
    assert pkg.metadata["distillation"]["steps"] == 1
    emulated, reference = Accelerator(pkg, "emulated"), Accelerator(pkg, "reference")
    runtime = WhisperRuntime(pkg.weights, emulated)
    enc = runtime.encode(runtime.features(load_audio(demo_clip)))
    assert enc.shape == (1500, 384) and np.all(np.isfinite(enc))
    x = enc[:64]
    np.testing.assert_array_equal(
        emulated.matmul(x, "decoder.blocks.0.cross_attn.key"), reference.matmul(x, "decoder.blocks.0.cross_attn.key")
    )
    total = emulated.stats.total()
    assert total.measured_cycles == total.cycles > 0  # C-sim counter == cycle model on the distilled layers


def test_gradual_schedule_keeps_rates_and_resumes_exactly(
    pruned_package8, whisper_weights, train_dir, tmp_path, monkeypatch
):
    """Gradual re-pruning (two steps) with augmentation and every loss: per-layer tile counts are the package's,
    pruned tiles are zero, and a run interrupted after its first step resumes to the same package."""
    kw = dict(
        epochs=1,
        lr=1e-4,
        max_steps=2,
        checkpoint_every=1,
        batch=1,
        schedule="gradual",
        stages=2,
        augment=True,
        losses=("enc", "blocks", "kv", "logits"),
    )
    teacher_before = whisper_weights.params["encoder.blocks.1.mlp.0.weight"].copy()
    full = distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "g.sasp", DistillConfig(**kw))
    # the gradual student starts from the teacher's weights: training it must not write into the teacher
    np.testing.assert_array_equal(whisper_weights.params["encoder.blocks.1.mlp.0.weight"], teacher_before)
    before, after = load_package(pruned_package8), load_package(full)
    assert after.metadata["distillation"]["schedule"] == "gradual"
    for layer in before.layers:
        assert package_keep(after, layer).sum() == package_keep(before, layer).sum(), layer
        w = after.layers[layer].weights.to_dense()
        mask = np.repeat(np.repeat(package_keep(after, layer), 8, 0), 8, 1)[: w.shape[0], : w.shape[1]]
        assert not np.any(w[~mask]), f"{layer}: pruned tile nonzero"
    ckpt = tmp_path / "g.ckpt"
    real_step = Distiller.train_step
    calls = []

    def interrupted(self, idx, step):  # the process dies after its first step (checkpoint written)
        if calls:
            raise KeyboardInterrupt
        calls.append(step)
        return real_step(self, idx, step)

    monkeypatch.setattr(Distiller, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "g1.sasp", DistillConfig(**kw), ckpt)
    monkeypatch.setattr(Distiller, "train_step", real_step)
    resumed = distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "g2.sasp", DistillConfig(**kw), ckpt)
    for layer in ("encoder.blocks.1.mlp.0", "decoder.blocks.0.cross_attn.key"):
        for a, b in zip(_layer_arrays(full, layer), _layer_arrays(resumed, layer)):
            np.testing.assert_array_equal(a, b)


def test_trimmed_window_distillation_trains_and_records_it(pruned_package8, whisper_weights, train_dir, tmp_path):
    cfg = DistillConfig(epochs=1, max_steps=1, trim=True, losses=("enc", "logits"), lr=1e-3)
    out = distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "t.sasp", cfg)
    name = "encoder.blocks.0.attn.query"
    assert load_package(out).metadata["distillation"]["trimmed_windows"] is True
    assert not np.array_equal(_layer_arrays(pruned_package8, name)[0], _layer_arrays(out, name)[0])


def test_export_distill_option_writes_a_distilled_package(train_dir, tmp_path):
    from model.export import main as export_main

    out = tmp_path / "e.sasp"
    rc = export_main(
        [
            "--tile",
            "8",
            "--sparsity",
            "0.2",
            "--method",
            "magnitude",
            "--uniform",
            "--layers",
            r"^encoder\.blocks\.",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
            "--distill",
            str(train_dir),
            "--distill-max-steps",
            "1",
            "--distill-loss",
            "enc",
            "--distill-device",
            "cpu",
        ]
    )
    meta = load_package(out).metadata
    assert rc == 0 and meta["distillation"]["steps"] == 1 and meta["distillation"]["losses"] == ["enc"]
    assert (tmp_path / "e-pruned.sasp").exists()  # the undistilled package stays beside it
    from model.pipeline import DEFAULT_SOURCE

    assert meta["source"] == DEFAULT_SOURCE  # the command line's packages name their weights as the library's


@pytest.mark.parametrize(
    "cfg, message",
    [
        (dict(schedule="sometimes"), "unknown schedule"),
        (dict(losses=()), "no loss selected"),
    ],
)
def test_bad_distillation_config_is_a_clear_error(cfg, message):
    with pytest.raises(UserError, match=message):
        DistillConfig(max_steps=1, **cfg)


def test_trimmed_windows_sum_every_chosen_loss(pruned_package8, whisper_weights, train_dir):
    """With trimmed windows every chosen term is computed: enc + kv + blocks is the sum of each alone, and each (the
    encoder output, the decoder's cross-attention keys and values, every encoder block's output, all of the pruned
    encoder) is an error above zero."""
    from model.distill import load_clips, sparse_model_of

    clips = load_clips([train_dir])
    start = sparse_model_of(load_package(pruned_package8))

    def loss(*losses: str) -> float:
        d = Distiller(whisper_weights, start, clips, DistillConfig(trim=True, losses=losses))
        with torch.no_grad():
            return float(d.loss([0], 0))

    enc, kv, blocks, every = loss("enc"), loss("kv"), loss("blocks"), loss("enc", "kv", "blocks")
    assert kv > 1e-4 and enc > 1e-4 and blocks > 1e-4
    assert every == pytest.approx(enc + kv + blocks, rel=1e-5)


def test_augmented_clips_keep_their_length_and_a_silent_padding(pruned_package8, whisper_weights, train_dir):
    """Speed perturbation changes a clip's length, and the trimmed window follows it (a slowed clip is not cut off
    while the teacher hears all of it); the noise stays on the clip, so the window's padding is silent."""
    from host.features import HOP_LENGTH
    from model.distill import load_clips, sparse_model_of

    clips = load_clips([train_dir])
    start = sparse_model_of(load_package(pruned_package8))
    d = Distiller(whisper_weights, start, clips, DistillConfig(augment=True, trim=True))
    plain = [len(c) for c in clips]
    seen = []
    for step in range(6):
        mel, lengths = d.mels([0, 1], step)
        for j, n in enumerate(lengths):
            assert plain[j] / 1.1 - 1 <= n <= plain[j] / 0.9
            seen.append(n / plain[j])
            tail = mel[j, :, n // HOP_LENGTH + 2 :]
            assert torch.all(tail == tail.min()), "noise in the padding"
    assert min(seen) < 0.99 and max(seen) > 1.01  # both slowed and sped-up clips were drawn
    assert d.mels([0, 1], 0)[1] == d.mels([0, 1], 0)[1]  # deterministic in (seed, step)
    assert d.mels([0], 0)[0].shape == mel[:1].shape


def test_a_checkpoint_of_another_run_or_a_damaged_one_is_refused(
    pruned_package8, whisper_weights, train_dir, tmp_path, monkeypatch
):
    import model.distill as distill_module

    ckpt = tmp_path / "run.ckpt"
    distill(
        pruned_package8,
        whisper_weights,
        [train_dir],
        tmp_path / "a.sasp",
        DistillConfig(epochs=1, lr=1e-4, max_steps=1, checkpoint_every=1),
        ckpt,
    )
    written = ckpt.read_bytes()
    code_tag = distill_module.code_tag
    with monkeypatch.context() as m:  # the same options after a change to the training code
        m.setattr(distill_module, "code_tag", lambda module: code_tag(module) + "-changed")
        with pytest.raises(
            UserError, match="checkpoint of another run \\(written by other training code or library versions\\)"
        ):
            distill(
                pruned_package8,
                whisper_weights,
                [train_dir],
                tmp_path / "b.sasp",
                DistillConfig(epochs=1, lr=1e-4, max_steps=2, checkpoint_every=1),
                ckpt,
            )
    assert ckpt.read_bytes() == written
    other = DistillConfig(epochs=1, lr=3e-5, max_steps=2, checkpoint_every=1)
    with pytest.raises(UserError, match="checkpoint of another run \\(lr differs\\)"):
        distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "b.sasp", other, ckpt)
    ckpt.write_bytes(written[: len(written) // 2])
    with pytest.raises(UserError, match="damaged or not a distillation checkpoint"):
        distill(pruned_package8, whisper_weights, [train_dir], tmp_path / "b.sasp", other, ckpt)
    assert ckpt.read_bytes() == written[: len(written) // 2] and not (tmp_path / "b.sasp").exists()


def test_distill_without_audio_is_a_clear_error(pruned_package8, whisper_weights, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        distill(pruned_package8, whisper_weights, [tmp_path / "empty"], tmp_path / "x.sasp", DistillConfig())


def test_pseudo_labels_are_decoded_once_and_a_damaged_cache_is_redone(
    pruned_package8, whisper_weights, train_dir, tmp_path, monkeypatch
):
    import model.distill as distill_module
    from model.distill import load_clips, pseudo_cache_path, sparse_model_of
    from model.reference import TorchWhisper

    monkeypatch.setenv("SASP_CACHE", str(tmp_path))
    calls = []
    greedy = TorchWhisper.greedy
    monkeypatch.setattr(TorchWhisper, "greedy", lambda self, *a, **k: calls.append(1) or greedy(self, *a, **k))
    clips = load_clips([train_dir])
    start = sparse_model_of(load_package(pruned_package8))

    def labels():
        return Distiller(whisper_weights, start, clips, DistillConfig(epochs=1)).pseudo_labels()

    first = labels()
    assert len(calls) == len(clips) and len(first) == len(clips)
    assert labels() == first and len(calls) == len(clips)  # read back, not decoded again
    d = Distiller(whisper_weights, start, clips, DistillConfig(epochs=1))
    pseudo_cache_path(d.teacher.w, d.audio).write_text('{"clips": 2, "tok')  # interrupted write
    assert labels() == first and len(calls) == 2 * len(clips)
    code_tag = distill_module.code_tag
    monkeypatch.setattr(distill_module, "code_tag", lambda module: code_tag(module) + "-changed")  # other decoding
    assert labels() == first and len(calls) == 3 * len(clips)  # decoded again, not read from the old code's file


def test_a_soup_is_the_average_of_its_seeds_runs_and_keeps_the_tiles(
    pruned_package8, whisper_weights, train_dir, tmp_path
):
    base = dict(epochs=1, lr=1e-3, max_steps=1, batch=1, losses=("enc",))  # one clip: the seed picks which
    runs = [
        distill(pruned_package8, whisper_weights, [train_dir], tmp_path / f"s{s}.sasp", DistillConfig(seed=s, **base))
        for s in (2, 3)
    ]
    soup = distill(
        pruned_package8,
        whisper_weights,
        [train_dir],
        tmp_path / "soup.sasp",
        DistillConfig(seed=2, soup=2, **base),
        tmp_path / "soup.ckpt",
    )
    assert load_package(soup).metadata["distillation"]["soup"] == [2, 3]
    assert "soup" not in load_package(runs[0]).metadata["distillation"]  # a single run's package is as before
    assert (tmp_path / "soup-seed2.ckpt").exists() and (tmp_path / "soup-seed3.ckpt").exists()
    name = "encoder.blocks.0.attn.query"
    one, two, mixed = (load_package(p).layers[name] for p in (*runs, soup))
    assert not np.array_equal(one.dequantized(), two.dequantized())  # seeds 2 and 3 start on different clips
    np.testing.assert_array_equal(package_keep(load_package(soup), name), package_keep(load_package(runs[0]), name))
    # int8 re-quantization of the mean of the float weights: within a quantization step of the quantized mean
    step = np.max(np.abs(mixed.dequantized())) / 127
    np.testing.assert_allclose(mixed.dequantized(), (one.dequantized() + two.dequantized()) / 2, atol=2 * step)
    assert not np.allclose(mixed.dequantized(), one.dequantized(), atol=step / 4)


def test_a_soup_of_the_gradual_schedule_is_refused():
    with pytest.raises(UserError, match="oneshot schedule"):
        DistillConfig(schedule="gradual", soup=2)


def test_a_passed_deadline_stops_before_the_next_step(pruned_package8, whisper_weights, train_dir):
    """``run(deadline=...)``: a machine lent for a fixed time stops the run between steps and says how far it got."""
    import time

    from model.distill import load_clips, run, sparse_model_of

    clips = load_clips([train_dir])
    start = sparse_model_of(load_package(pruned_package8))
    cfg = DistillConfig(epochs=1, max_steps=2, batch=1, lr=1e-3)
    name = "encoder.blocks.0.attn.query"
    stopped, steps = run(whisper_weights, start, clips, cfg, progress=False, deadline=time.monotonic() - 1.0)
    assert steps == 0
    np.testing.assert_array_equal(stopped.weights.params[f"{name}.weight"], start.weights.params[f"{name}.weight"])
    trained, steps = run(whisper_weights, start, clips, cfg, progress=False, deadline=time.monotonic() + 3600.0)
    assert steps == 2
    assert not np.array_equal(trained.weights.params[f"{name}.weight"], start.weights.params[f"{name}.weight"])


def test_trimmed_windows_batch_the_clips_that_share_a_window(pruned_package8, whisper_weights, demo_clip):
    """Clips of one window length run as one batch, with their pseudo-labels padded to one length: the loss of a
    batch is the mean of each clip's loss alone (every term, two window lengths, labels of four lengths)."""
    from host.whisper import trimmed_ctx
    from model.distill import sparse_model_of

    a = load_audio(demo_clip)
    clips = [a, a[: len(a) // 2], a[: len(a) // 3], a[len(a) // 4 :], a[: len(a) // 2 + 800]]
    assert len({trimmed_ctx(len(c), 1500) for c in clips}) == 2
    pseudo = [[50257, 50362, 400 + i, 500, 600 + 7 * i][: 2 + i % 4] for i in range(len(clips))]
    cfg = DistillConfig(trim=True, losses=("enc", "blocks", "kv", "logits"))
    d = Distiller(whisper_weights, sparse_model_of(load_package(pruned_package8)), clips, cfg, pseudo)
    with torch.no_grad():
        alone = [float(d.loss([i], 0)) for i in range(len(clips))]
        together = float(d.loss(list(range(len(clips))), 0))
    assert min(alone) > 1e-3
    assert together == pytest.approx(np.mean(alone), rel=1e-5)


@pytest.mark.parametrize("trim", [True, False])
def test_the_teachers_targets_are_computed_once_per_clip_and_equal_the_batchs(
    pruned_package8, whisper_weights, demo_clip, trim
):
    """Without augmentation each clip's teacher targets (encoder outputs, next-token log-probabilities) are computed
    the first time the clip is in a batch and kept: later batches that mix kept and new clips give the losses that
    computing the teacher for every batch gives (augmented clips are never kept), and the teacher runs once per
    clip."""
    from model.distill import sparse_model_of

    a = load_audio(demo_clip)
    clips = [a, a[: len(a) // 2], a[len(a) // 4 :]]
    pseudo = [[50257, 50362, 400 + i, 500, 600 + 7 * i][: 2 + i % 4] for i in range(len(clips))]
    cfg = DistillConfig(trim=trim, losses=("enc", "blocks", "kv", "logits"))
    start = sparse_model_of(load_package(pruned_package8))
    kept = Distiller(whisper_weights, start, clips, cfg, pseudo)
    fresh = Distiller(whisper_weights, start, clips, cfg, pseudo, keep_targets=False)
    assert Distiller(whisper_weights, start, clips, DistillConfig(augment=True), pseudo)._kept is None
    runs = {"encoder": 0, "decoder": 0}
    enc, dec = kept.teacher.encode_blocks, kept.teacher.logits_grad

    def counted(fn, what):
        def call(*args):
            runs[what] += args[0].shape[0]
            return fn(*args)

        return call

    kept.teacher.encode_blocks = counted(enc, "encoder")
    kept.teacher.logits_grad = counted(dec, "decoder")
    with torch.no_grad():
        for batch in ([0, 2], [2, 1], [1, 0, 2]):  # new clips; kept and new mixed; all kept, in another order
            assert float(kept.loss(batch, 0)) == pytest.approx(float(fresh.loss(batch, 0)), rel=1e-6, abs=0)
    assert runs == {"encoder": len(clips), "decoder": len(clips)}
