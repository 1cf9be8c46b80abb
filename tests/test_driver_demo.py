"""The accelerator driver and the end-to-end demo: emulated == reference, report labels, refusals, time-outs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from host.driver import Accelerator, ReferenceBackend, split_columns
from host.errors import AcceleratorTimeoutError
from host.package import PackageError, load_package

LABELS = {"measured", "emulated", "modeled", "counted", "measured (jiwer)"}


def _labelled_figures(node, path=""):
    """Every dict with a 'value' must carry a known label; yields their paths."""
    if isinstance(node, dict):
        if "value" in node:
            assert node.get("label") in LABELS, f"{path} has no honest label: {node}"
            yield path
        for k, v in node.items():
            yield from _labelled_figures(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _labelled_figures(v, f"{path}[{i}]")


def test_demo_emulated_matches_reference_and_report_is_labelled(dense_package8, tmp_path):
    from host import asr_demo

    out = {}
    for backend in ("reference", "emulated"):
        path = tmp_path / f"{backend}.json"
        assert asr_demo.main(["--backend", backend, "--package", str(dense_package8), "--json", str(path)]) == 0
        out[backend] = json.loads(path.read_text())
    ref, emu = out["reference"]["utterances"][0], out["emulated"]["utterances"][0]
    assert emu["transcript"] == ref["transcript"] and len(ref["transcript"]) > 20
    assert emu["wer"]["value"] == 0.0
    # the emulated run reports the C-sim cycle counter, and it equals the cycle model
    assert "(equal)" in emu["kernel_check"]
    paths = list(_labelled_figures(out["emulated"]))
    assert {".utterances[0].latency.encoder.total_s", ".utterances[0].work.weight_macs_done"} <= set(paths)
    for rep in out.values():
        mb = rep["utterances"][0]["modeled_board"]
        assert mb["label"] == "modeled" and mb["assumptions"]
        assert rep["utterances"][0]["energy"]["label"] == "modeled"
        assert mb["total_s"] > 0 and mb["speedup_from_pruning"] == pytest.approx(1.0)  # dense package
    assert out["emulated"]["utterances"][0]["latency"]["encoder"]["total_s"]["label"] == "emulated"


def test_package_for_array_8_refused_on_array_16(dense_package8):
    pkg = load_package(dense_package8)
    with pytest.raises(ValueError, match="built for 8x8 tiles but the ReferenceBackend array is 16x16"):
        Accelerator(pkg, ReferenceBackend((16, 16)))
    with pytest.raises(PackageError, match="built for 8x8 tiles but the accelerator array is 16x16"):
        load_package(dense_package8, expect_tile=(16, 16))


def test_demo_refuses_mismatched_array(dense_package8, capsys):
    from host import asr_demo

    assert asr_demo.main(["--package", str(dense_package8), "--array", "16", "--backend", "reference"]) == 2
    assert "built for 8x8 tiles" in capsys.readouterr().err


def test_stalled_kernel_times_out(dense_package8):
    class Stalled(ReferenceBackend):
        def gemm(self, x_q, scale_x, op):
            time.sleep(30)  # a kernel that never raises done
            return super().gemm(x_q, scale_x, op)

    acc = Accelerator(load_package(dense_package8), Stalled((8, 8)), timeout_s=0.5)
    t0 = time.perf_counter()
    with pytest.raises(AcceleratorTimeoutError, match="did not finish within 0.5 s"):
        acc.matmul(np.ones((4, 384), np.float32), "encoder.blocks.0.attn.query")
    assert time.perf_counter() - t0 < 5
    with pytest.raises(AcceleratorTimeoutError, match="unusable after an earlier time-out"):
        acc.matmul(np.ones((4, 384), np.float32), "encoder.blocks.0.attn.query")


def test_truncated_stream_is_a_stall_error_not_a_hang():
    from host.blocksparse import BlockSparseWeights
    from host.emulator import EmulatedKernel, KernelStallError
    from host.stream import GemmOperand, pack_input

    rng = np.random.default_rng(0)
    w = BlockSparseWeights.from_dense(rng.integers(-5, 5, (64, 32)).astype(np.int8), (8, 8))
    op = GemmOperand(w, np.ones(32, np.float32), np.zeros(32, np.float32))
    x = rng.integers(-5, 5, (10, 64)).astype(np.int8)
    kern = EmulatedKernel(8)
    words = pack_input(x, np.ones(10, np.float32), (8, 8))
    with pytest.raises(KernelStallError, match="host sent fewer stream words"):
        kern.run_packed(words[:-3], op.segment, 10, 64, 32)


def test_int8_path_matches_float_within_tolerance(dense_package8, whisper_weights):
    """Per-row int8 activations x per-channel int8 weights vs float32: relative error of one layer's output."""
    pkg = load_package(dense_package8)
    acc = Accelerator(pkg, "reference")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 384)).astype(np.float32)
    w = whisper_weights.params["encoder.blocks.1.mlp.0.weight"].T
    ref = x @ w + whisper_weights.params["encoder.blocks.1.mlp.0.bias"]
    got = acc.matmul(x, "encoder.blocks.1.mlp.0")
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert rel < 0.02, rel  # measured about 0.8% for Gaussian inputs


def test_split_columns_covers_every_column_once(dense_package8):
    w = load_package(dense_package8).layers["decoder.logits"].weights
    parts = split_columns(w, 4096)
    assert parts[0][0] == 0 and parts[-1][1] == w.n and all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    x = np.random.default_rng(1).integers(-127, 128, (2, 384)).astype(np.int8)
    np.testing.assert_array_equal(np.concatenate([p.gemm_int(x) for _, _, p in parts], axis=1), w.gemm_int(x))


def test_demo_without_torch_asks_for_a_package_in_one_line(tmp_path, monkeypatch, capsys):
    """On a board (no torch) the demo never builds a package itself: one line naming the builder, exit code 2."""
    from host import asr_demo

    monkeypatch.setenv("SASP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(asr_demo, "find_spec", lambda name: None)
    assert asr_demo.main(["--array", "16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    name = f"whisper-tiny.en-16x16-dense-{asr_demo.code_tag(asr_demo.BUILDER[1])}.sasp"  # named by the builder's code
    assert len(err) == 1 and name in err[0], err
    assert "python -m model.export --tile 16 --sparsity 0.0 --method act-ls --out PKG" in err[0]
    assert "--package PKG" in err[0] and not (tmp_path / "cache").exists()


def test_recorded_calls_carry_the_stage_of_their_layer(dense_package8):
    """The driver takes each call's stage from host.whisper_layers (not from the caller)."""
    acc = Accelerator(load_package(dense_package8), "reference")
    for layer in ("encoder.conv2", "decoder.blocks.0.cross_attn.key", "decoder.logits"):
        acc.matmul(np.ones((2, acc.package.layers[layer].weights.k), np.float32), layer)
    acc.matmul_dynamic([(np.ones((2, 64), np.float32), np.ones((64, 3), np.float32))], "encoder.blocks.0.attn.qk")
    stages = {c.layer: c.stage for c in acc.take_calls()}
    assert stages == {
        "encoder.conv2": "encoder",
        "decoder.blocks.0.cross_attn.key": "decoder",
        "decoder.logits": "decoder",
        "encoder.blocks.0.attn.qk": "encoder",
    }
    acc.close()


def test_emulated_kernel_is_the_chosen_boards_build(dense_package8, monkeypatch):
    import host.asr_demo as demo
    from host.boards import board_spec
    from host.driver import EmulatedBackend

    seen = {}

    def stop(package, backend, **kwargs):
        seen.update(kwargs, backend=backend)
        raise ValueError("stopped before transcribing")

    monkeypatch.setattr(demo, "Accelerator", stop)
    args = ["--package", str(dense_package8), "--array", "8", "--backend", "emulated", "--board", "ultra96"]
    assert demo.main(args) == 2
    assert seen["backend"] == "emulated" and seen["board"] == "ultra96-v2"
    chunk = EmulatedBackend((8, 8), board=seen["board"]).chunk
    assert chunk == board_spec("ultra96-v2").kernel_chunk != board_spec("pynq-z2").kernel_chunk
