"""The per-class system model: backend independence, classes adding up, calibration files, the validation path."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from host.calls import GemmCall
from host.cycle_model import column_slabs, dense_nnz
from host.system_model import (
    CALL_CLASSES,
    CPU_CLASSES,
    STAGES,
    add_ops,
    host_ops,
    kernel_limits,
    model_latency,
)
from host.whisper_weights import TINY_EN_CONFIG

ROOT = Path(__file__).resolve().parents[1]
CFG = TINY_EN_CONFIG


def _call(stage: str, layer: str, m: int, k: int, n: int, array: int = 8) -> GemmCall:
    return GemmCall(stage, layer, m, k, n, tuple(dense_nnz(k, n, array)))


def _slabs(c: GemmCall, n_max: int, array: int = 8) -> list:
    """``c`` cut the way ``host.driver.split_columns`` cuts a GEMM wider than a backend's N limit."""
    return [
        GemmCall(c.stage, c.layer, c.m, c.k, min(c.n, b1 * array) - b0 * array, c.nnz[b0:b1])
        for b0, b1 in column_slabs(c.n, array, n_max)
    ]


def _utterance(n_max=None) -> list:
    """Calls of a short utterance: encoder layers, per-head attention products, two decoder steps with logits."""
    calls = [_call("encoder", "encoder.blocks.0.attn.query", 1500, 384, 384)]
    calls += [_call("encoder", "encoder.blocks.0.attn.qk", 1500, 64, 1500) for _ in range(6)]
    calls += [_call("encoder", "encoder.blocks.0.mlp.0", 1500, 384, 1536)]
    for _ in range(2):
        calls += [_call("decoder", "decoder.blocks.0.mlp.0", 1, 384, 1536)]
        calls += [_call("decoder", "decoder.logits", 1, 384, 51864)]
    if n_max is None:
        return calls
    return [s for c in calls for s in (_slabs(c, n_max) if c.n > n_max else [c])]


def test_model_is_the_same_whichever_way_this_machine_split_the_calls():
    ops = host_ops(CFG, 1500, 1)
    # reference (no split) and emulated (column slabs at the kernel's N_max), in any order
    n_max = kernel_limits()[1]
    one, slabs = (model_latency(_utterance(n), ops, "pynq-z2", 8) for n in (None, n_max))
    shuffled = model_latency(sorted(_utterance(n_max), key=lambda c: (c.n, c.layer)), ops, "pynq-z2", 8)
    assert len(_utterance(n_max)) > len(_utterance(None))
    for other in (slabs, shuffled):
        assert other["total_s"] == pytest.approx(one["total_s"], rel=1e-12)
        for s in STAGES:
            assert other["stages"][s]["classes"] == pytest.approx(one["stages"][s]["classes"], rel=1e-12)
    # the board splits the logits at its own N limit: ceil(51864 / N_max) runs per token
    runs = -(-51864 // n_max)
    assert one["stages"]["decoder"]["calls"] == 2 * (1 + runs)


def test_classes_add_up_to_the_stage_totals():
    ops = host_ops(CFG, 1500, 12)
    lat = model_latency(_utterance(), ops, "ultra96-v2", 8)
    for s in STAGES:
        st = lat["stages"][s]
        assert sum(st["classes"].values()) == pytest.approx(st["total_s"], rel=1e-9)
        assert st["total_s"] == pytest.approx(st["accel_s"] + st["overhead_s"] + st["host_s"], rel=1e-9)
        assert st["classes"]["kernel"] + st["classes"]["dma_stall"] == pytest.approx(st["accel_s"], rel=1e-9)
        assert set(ops[s]) <= set(st["classes"])
    assert lat["total_s"] == pytest.approx(sum(lat["stages"][s]["total_s"] for s in STAGES))
    enc = lat["stages"]["encoder"]["classes"]
    assert min(enc[k] for k in ("softmax", "gelu", "layer_norm", "quantize", "fp16_cast", "attention")) > 0


def test_counts_follow_the_shape_and_the_epilogue_flag():
    full, trimmed = host_ops(CFG, 1500, 10), host_ops(CFG, 250, 10)
    # the encoder's softmax grows with the square of the window, its GELU linearly
    assert full["encoder"]["softmax"]["exp"] == pytest.approx(36 * trimmed["encoder"]["softmax"]["exp"])
    assert full["encoder"]["gelu"]["erf"] == pytest.approx(6 * trimmed["encoder"]["gelu"]["erf"])
    assert full["encoder"]["softmax"]["exp"] == 4 * 6 * 1500 * 1500
    # attention products on the CPU become GEMM flops, off the accelerator's quantize passes
    host_attn = host_ops(CFG, 1500, 10, attention_on_accel=False)
    assert host_attn["encoder"]["attention"]["gemm"] == 4 * 2 * 2 * 6 * 1500 * 1500 * 64
    assert host_attn["encoder"]["quantize"]["elementwise"] < full["encoder"]["quantize"]["elementwise"]
    # the on-chip epilogue leaves one float16 -> float32 cast instead of the dequantize passes
    epi = host_ops(CFG, 1500, 10, epilogue=True)
    assert "dequantize" not in epi["encoder"] and epi["encoder"]["fp16_cast"]["half"] > 0
    assert "fp16_cast" not in host_ops(CFG, 1500, 10, epilogue=False)["encoder"]
    assert epi["encoder"]["quantize"] == full["encoder"]["quantize"]
    # more tokens, more decoder work; summing utterances adds counts
    assert host_ops(CFG, 1500, 20)["decoder"]["gelu"]["erf"] > full["decoder"]["gelu"]["erf"]
    total = add_ops(add_ops({}, full), full)
    assert total["encoder"]["gelu"]["erf"] == 2 * full["encoder"]["gelu"]["erf"]


def _calibration(scale: float) -> dict:
    from host.system_model import host_costs

    plan = host_costs("pynq-z2")
    classes = {
        k: {"unit": plan[k]["unit"], "s_per_unit": scale * plan[k]["s_per_unit"], "basis": "test"}
        for k in CPU_CLASSES + ("driver_call",)
    }
    return {
        "schema": "sasp-host-calibration/1",
        "source": "test",
        "classes": classes,
        "stream": {"bytes_per_s": 1e9, "basis": "test"},
    }


def test_calibration_file_round_trip(tmp_path):
    ops = host_ops(CFG, 1500, 5)
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(_calibration(2.0)))
    plan = model_latency(_utterance(), ops, "pynq-z2", 8)
    from_file = model_latency(_utterance(), ops, "pynq-z2", 8, calibration=path)
    from_dict = model_latency(_utterance(), ops, "pynq-z2", 8, calibration=_calibration(2.0))
    assert from_file["total_s"] == from_dict["total_s"]
    for s in STAGES:
        # CPU classes doubled, the classes the calibration leaves out keep their planning values
        assert from_file["stages"][s]["host_s"] == pytest.approx(2 * plan["stages"][s]["host_s"], rel=1e-9)
        for k in ("pack_unpack", "cache", "kernel"):
            assert from_file["stages"][s]["classes"][k] == pytest.approx(plan["stages"][s]["classes"][k])
    dma = sum(from_file["stages"][s]["dma_s"] for s in STAGES)
    assert dma == pytest.approx(sum(st["bytes"] for st in from_file["stages"].values()) / 1e9)
    assert any("calibration test" in a for a in from_file["assumptions"])
    bad = _calibration(1.0)
    bad["classes"]["warp_drive"] = {"unit": "x", "s_per_unit": 1.0, "basis": "test"}
    with pytest.raises(ValueError, match="warp_drive"):
        model_latency(_utterance(), ops, "pynq-z2", 8, calibration=bad)


def test_every_board_prices_every_class_with_a_basis():
    from host.boards import load_boards

    for name, prof in load_boards().items():
        classes = prof["host_model"]["classes"]
        assert set(classes) == set(CPU_CLASSES + CALL_CLASSES), name
        for k, v in classes.items():
            lo, hi = v["range_s_per_unit"]
            assert 0 < lo <= v["s_per_unit"] <= hi, (name, k)
            assert v["basis"].split(":")[0] in {"measured (published)", "derived", "assumption"}, (name, k)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_host_ops", ROOT / "benchmarks" / "bench_host_ops.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_validation_path_on_a_tiny_model(tmp_path):
    from test_sweep import audio_whisper

    from host.package import load_package
    from model.export import export_package
    from model.pipeline import ExportConfig

    bench = _bench()
    path = export_package(tmp_path / "tiny.sasp", audio_whisper(), ExportConfig(method="magnitude", cache_dir=None))
    pkg = load_package(path)
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    modeled, measured, lat = bench.validate(pkg, audio, _calibration(1.0), runs=2)
    assert modeled > 0 and measured > 0
    # the host share is the CPU functions and the driver's Python, nothing of the board's DMA path
    assert modeled == pytest.approx(bench.host_share(lat))
    assert modeled == pytest.approx(
        sum(
            v
            for s in STAGES
            for k, v in lat["stages"][s]["classes"].items()
            if k not in ("kernel", "dma_stall", "pack_unpack", "cache", "mmio_dma")
        )
    )
    enc = lat["stages"]["encoder"]["classes"]
    assert enc["pack_unpack"] > 0 and enc["driver"] > 0 and enc["softmax"] > 0


def test_retiled_calls_take_another_packages_tiles_where_a_call_spans_the_layer():
    from host.system_model import retiled_calls

    whole = _call("encoder", "encoder.blocks.0.mlp.0", 10, 384, 1536)
    slab = _call("decoder", "decoder.logits", 1, 384, 4096)
    other = _call("decoder", "decoder.blocks.0.attn.query", 1, 384, 384)
    tiles = {whole.layer: [3] * len(whole.nnz), slab.layer: [1] * 6486}  # the logits' full width: no slab of it
    out = retiled_calls([whole, slab, other], tiles)
    assert out[0].nnz == (3,) * len(whole.nnz) and (out[0].m, out[0].k, out[0].n) == (10, 384, 1536)
    assert out[1] is slab and out[2] is other
