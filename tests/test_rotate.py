"""Rotated heads (``model.rotate``): the same function, each head's pair sorted and balanced in its weighted SVD
basis (trailing dims cost what a truncated SVD costs), the checkpoint the exporter and the distiller take, and the
teacher check a package exported from other weights gets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import assert_same_function, make_tiny_whisper, random_stats

import model.calibrate as calibrate
import model.distill as distill
import model.export as export
import model.rotate as rotate
from host.cli import UserError
from host.dataset import list_audio_files
from host.package import load_package
from model.calibrate import CalibStats
from model.load import load_whisper
from model.pipeline import ExportConfig, step_cache, weights_digest


def attention_stats(weights, seed: int = 0) -> CalibStats:
    """Gram matrices of correlated random inputs for the layers the rotation reads."""
    rng = np.random.default_rng(seed)
    out = CalibStats()
    for group in rotate.attention_groups(weights.config):
        for name in (n for n, axis in group.members if axis == "out"):
            k = weights.params[f"{name}.weight"].shape[1]
            out.add(name, rng.standard_normal((3 * k, k)) @ (rng.standard_normal((k, k)) * rng.random(k) ** 2))
    return out


def pair(weights, kind: str, first: str, second: str, cols: slice):
    """A head's ``(a, b)`` with ``a b^T`` the product it computes (``rotate_heads``' layout)."""
    a = weights.params[f"{first}.weight"].astype(np.float64).T[:, cols]
    w2 = weights.params[f"{second}.weight"].astype(np.float64)
    return a, (w2[cols].T if kind == "qk" else w2[:, cols])


def test_rotated_model_computes_the_same(whisper_weights, demo_clip):
    """Whisper tiny.en rotated encodes the demo clip, transcribes it and scores every next token as the model as
    given, to float32 rounding; only the attention layers' weights and biases change."""
    new, spectra = rotate.rotate_heads(whisper_weights, attention_stats(whisper_weights))
    moved = {k for k in whisper_weights.params if not np.array_equal(whisper_weights.params[k], new.params[k])}
    assert moved and all(k.rsplit(".", 2)[-2] in ("query", "key", "value", "out") for k in moved)
    assert len(spectra) == 2 * (4 + 4 + 4)  # query/key, value/out: 4 encoder, 4 + 4 decoder attentions
    assert_same_function(whisper_weights, new, demo_clip)


def test_each_head_is_sorted_balanced_and_truncates_as_an_svd():
    """Per head: the product is kept; in the weighted norm both sides' columns are orthogonal with norms
    ``sqrt(s_i)``, ``s`` descending; dropping the last half of the dims costs exactly the truncated SVD's error,
    less than dropping any half of the given dims."""
    model = make_tiny_whisper(d=32, seed=3)
    stats = attention_stats(model, seed=1)
    new, spectra = rotate.rotate_heads(model, stats)
    width = 16
    for group in rotate.attention_groups(model.config):
        (first, _), (second, axis) = group.members
        kind = "qk" if axis == "out" else "vo"
        la = rotate._chol(stats.gram[first], stats.rows[first])
        lb = rotate._chol(stats.gram[second], stats.rows[second]) if kind == "qk" else np.eye(32)
        for h, s in enumerate(spectra[first]):
            cols = slice(h * width, (h + 1) * width)
            (a, b), (a2, b2) = pair(model, kind, first, second, cols), pair(new, kind, first, second, cols)
            np.testing.assert_allclose(a2 @ b2.T, a @ b.T, rtol=1e-5, atol=1e-5)
            s = np.asarray(s)
            assert np.all(np.diff(s) <= 0)
            for m, lm in ((a2, la), (b2, lb)):
                np.testing.assert_allclose((lm.T @ m).T @ (lm.T @ m), np.diag(s), atol=1e-4 * s[0])
            full = la.T @ a @ b.T @ lb
            half = width // 2
            cut = np.linalg.norm(full - la.T @ a2[:, :half] @ b2[:, :half].T @ lb)
            assert cut == pytest.approx(np.sqrt(np.sum(s[half:] ** 2)), rel=1e-3)
            rng = np.random.default_rng(h)
            for _ in range(20):
                keep = rng.choice(width, half, replace=False)
                assert cut <= np.linalg.norm(full - la.T @ a[:, keep] @ b[:, keep].T @ lb) + 1e-9


def test_the_command_writes_a_checkpoint_the_loader_reads(tmp_path, demo_clip, whisper_weights, capsys, monkeypatch):
    """``python -m model.rotate`` on one clip: an openai-whisper checkpoint whose attention weights are rotated
    and whose other tensors are the model's; its statistics are the exporter's cache file of that audio, so a second
    run reads them and writes the same checkpoint, byte for byte under another name; bad options are one error line
    and exit code 2, before any work."""
    audio = tmp_path / "audio"
    audio.mkdir()
    shutil.copy(demo_clip, audio / demo_clip.name)
    out, cache = tmp_path / "rotated.pt", tmp_path / "cache"
    assert rotate.main(["--out", str(out), "--audio", str(audio), "--cache-dir", str(cache)]) == 0
    assert "query/key" in capsys.readouterr().out
    loaded = load_whisper(out)
    assert loaded.config == whisper_weights.config and loaded.vocab == whisper_weights.vocab
    same = {k for k, v in whisper_weights.params.items() if np.array_equal(v, loaded.params[k])}
    assert "encoder.blocks.0.mlp.0.weight" in same and "encoder.blocks.0.attn.query.weight" not in same
    cached = step_cache("calib", ExportConfig(cache_dir=cache), whisper_weights, list_audio_files(audio))
    assert [p.name for p in (cache / "calib").iterdir()] == [cached.name]  # the exporter's file for this audio
    with monkeypatch.context() as m:  # read from the cache: no audio is run
        m.setattr(calibrate, "dense_windows", lambda *a, **k: pytest.fail("statistics computed again"))
        assert rotate.main(["--out", str(tmp_path / "hit.pt"), "--audio", str(audio), "--cache-dir", str(cache)]) == 0
    cached.write_bytes(b"")  # damaged: computed again
    again = tmp_path / "again.pt"
    assert rotate.main(["--out", str(again), "--audio", str(audio), "--cache-dir", str(cache)]) == 0
    assert cached.stat().st_size > 0
    for other in (load_whisper(tmp_path / "hit.pt"), load_whisper(again)):
        assert all(np.array_equal(loaded.params[k], other.params[k]) for k in loaded.params)
    assert (tmp_path / "hit.pt").read_bytes() == out.read_bytes()  # other name, same weights: the same bytes
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as stop:
        rotate.main(["--out", str(tmp_path / "r.txt")])
    assert stop.value.code == 2
    assert rotate.main(["--out", str(out), "--audio", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("error" in line for line in err)


def test_a_package_from_other_weights_refuses_another_teacher(tmp_path, monkeypatch):
    """An export with ``--model`` records the digest of the weights it pruned; distilling it against other weights
    (the unrotated model) is one ``UserError`` line, against its own passes; a default export records none."""
    model = make_tiny_whisper(d=32, seed=3)
    rotated, _ = rotate.rotate_heads(model, attention_stats(model))
    monkeypatch.setattr(export, "calibration", lambda weights, cfg: (random_stats(weights, seed=2), []))
    tile = (4, 4)
    cfg = ExportConfig(tile, 0.3, "act-ls", calib=(tmp_path,), uniform=True, model="rotated.pt", cache_dir=None)
    pkg = load_package(export.export_package(tmp_path / "r.sasp", rotated, cfg))
    assert pkg.metadata["source"] == "rotated.pt" and pkg.metadata["source_digest"] == weights_digest(rotated)
    distill.check_teacher(pkg, rotated)
    with pytest.raises(UserError, match="other weights") as err:
        distill.check_teacher(pkg, model)
    assert "\n" not in str(err.value)
    plain = ExportConfig(tile, 0.3, "act-ls", calib=(tmp_path,), uniform=True, cache_dir=None)
    meta = load_package(export.export_package(tmp_path / "p.sasp", model, plain)).metadata
    assert "source_digest" not in meta
    distill.check_teacher(load_package(tmp_path / "p.sasp"), rotated)  # not recorded: not checked
