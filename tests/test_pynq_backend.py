"""host/pynq_backend.py without a board: imports without pynq, register offsets agree with the HLS interface, and
the backend's full call sequence (registers, DMA channels, cache maintenance, stream packing) against a fake
``pynq`` (tests/fake_pynq, a CI-only test double) whose DMA feeds the raw words to the C-simulated kernel."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from host.blocksparse import BlockSparseWeights
from host.cycle_model import kernel_cycles

ROOT = Path(__file__).resolve().parents[1]
FAKE_DIR = Path(__file__).resolve().parent / "fake_pynq"
INTERFACE = ROOT / "hls" / "interface.json"


def test_import_without_pynq(monkeypatch):
    """CI has no pynq: the module must import, and constructing the backend must say what is missing."""
    monkeypatch.setitem(sys.modules, "pynq", None)  # `import pynq` raises ImportError
    import host.pynq_backend as pb

    pb = importlib.reload(pb)
    with pytest.raises(pb.PynqBackendError, match="needs the pynq package"):
        pb.PynqBackend(array=8, board="pynq-z2")


def test_driver_opens_pynq_backend_lazily(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynq", None)
    from host.driver import open_backend
    from host.pynq_backend import PynqBackendError

    with pytest.raises(PynqBackendError, match="pynq package"):
        open_backend("pynq", (8, 8), board="pynq-z2")


# ---- register map: interface.json, the Vitis rule and the driver-header fixture agree --------------------------
def test_offsets_come_from_interface_json():
    from host.pynq_backend import load_interface

    iface = load_interface()
    raw = json.loads(INTERFACE.read_text())
    for reg in raw["s_axilite"]["registers"]:
        assert iface["offsets"][reg["name"]] == int(reg["offset"], 0)


def test_rows_per_call_fits_and_splits_at_chunks():
    from host.cycle_model import input_words, output_words
    from host.pynq_backend import rows_per_call

    limit = (1 << 12) - 1
    rows = rows_per_call(200, 64, 32, (8, 8), 16, limit)
    assert rows % 16 == 0 and 0 < rows < 200
    assert 8 * max(input_words(rows, 64, 8), output_words(rows, 32, 8)) <= limit
    assert rows_per_call(5, 64, 32, (8, 8), 16, limit) == 5


# ---- the backend against the fake pynq ----------------------------------------------------------------------
@pytest.fixture
def fake_pynq(monkeypatch, tmp_path):
    """The fake ``pynq`` on sys.path (this test module only) and an empty bitfile + hwh pair."""
    from host.emulator import ap_types_dir

    try:
        ap_types_dir()  # the emulator compiles the kernel against hls4ml's ap_types headers
    except RuntimeError as e:
        pytest.skip(f"kernel emulator unavailable: {e}")
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("kernel emulator unavailable: no C++ compiler")
    monkeypatch.syspath_prepend(str(FAKE_DIR))
    monkeypatch.delitem(sys.modules, "pynq", raising=False)
    import pynq

    assert getattr(pynq, "FAKE", False), "the real pynq was imported instead of the test double"
    pynq.CONFIG = pynq.FakeConfig()
    pynq.reset_stats()
    for a in (8, 16):
        (tmp_path / f"sasp_gemm_{a}.bit").write_bytes(b"")
        (tmp_path / f"sasp_gemm_{a}.hwh").write_text("<fake/>")
    yield pynq
    sys.modules.pop("pynq", None)


def make_backend(fake, tmp_path, array=8, **kw):
    from host.pynq_backend import PynqBackend

    fake.CONFIG.array = array
    return PynqBackend(array=(array, array), bitfile=tmp_path / f"sasp_gemm_{array}.bit", board="pynq-z2", **kw)


SHAPES = [  # (M, K, N): chunk multiples and remainders, K and N not multiples of the tile
    (1, 64, 48),
    (16, 64, 64),
    (37, 100, 90),
    (50, 240, 40),
]


def rand_bsw(rng, k, n, tile, density=0.6):
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    kb, nb = -(-k // tile[0]), -(-n // tile[1])
    keep = rng.random((kb, nb)) < density
    return BlockSparseWeights.from_dense(w, tile, keep)


def rand_op(rng, k, n, tile, density=0.6, resident=True):
    from host.stream import GemmOperand

    w = rand_bsw(rng, k, n, tile, density)
    scale = (rng.random(n) * 0.01).astype(np.float32)
    return GemmOperand(w, scale, rng.standard_normal(n).astype(np.float32), resident)


def rand_x(rng, m, k):
    return rng.integers(-128, 128, (m, k)).astype(np.int8), (rng.random(m) * 0.02).astype(np.float32)


def reference(x, sx, op):
    from host.quant import kernel_epilogue

    return kernel_epilogue(op.w.gemm_int(x), sx, op.scale, op.bias)


@pytest.mark.parametrize("array", [8, 16])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_bit_exact_with_emulator(fake_pynq, tmp_path, array, m, k, n):
    from host.emulator import EmulatedKernel

    be = make_backend(fake_pynq, tmp_path, array)
    assert be.chunk == 16 and be.array == (array, array)
    rng = np.random.default_rng(m * 1000 + k + n)
    op = rand_op(rng, k, n, (array, array))
    x, sx = rand_x(rng, m, k)
    y, cycles = be.gemm(x, sx, op)
    y_emu, cyc_emu = EmulatedKernel(array, 16).run(x, sx, op)
    assert y.dtype == np.float16 and np.array_equal(y.view(np.uint16), y_emu.view(np.uint16))
    assert np.array_equal(y.view(np.uint16), reference(x, sx, op).view(np.uint16))
    assert cycles == cyc_emu == kernel_cycles(m, k, n, op.w.nnz_per_colblock, array, 16)


def test_register_writes_and_cache_maintenance(fake_pynq, tmp_path):
    from host.kernel_spec import FLAG_FP16
    from host.pynq_backend import load_interface

    off = load_interface()["offsets"]
    be = make_backend(fake_pynq, tmp_path)
    fake_pynq.reset_stats()
    rng = np.random.default_rng(3)
    op = rand_op(rng, 64, 32, (8, 8))
    x, sx = rand_x(rng, 20, 64)
    be.gemm(x, sx, op)
    writes = dict(fake_pynq.STATS["writes"])
    assert writes[off["m"]] == 20 and writes[off["k"]] == 64 and writes[off["n"]] == 32
    assert writes[off["chunk"]] == 16 and writes[off["flags"]] == FLAG_FP16 and writes[off["ap_ctrl"]] & 1
    assert writes[off["wlen"]] == op.segment.size and writes[off["wmem"]] == be._resident[id(op)][1].physical_address
    assert fake_pynq.STATS["flush"] >= 2 and fake_pynq.STATS["invalidate"] >= 1
    assert all(fake_pynq.STATS["cacheable"]) and fake_pynq.STATS["runs"] == 1


def test_weights_resident_and_buffers_reused(fake_pynq, tmp_path):
    """A layer's weight segment is copied and flushed once; the activation/output buffers are allocated once."""
    rng = np.random.default_rng(4)
    ops = [rand_op(rng, k, n, (8, 8)) for k, n in ((64, 64), (128, 32), (32, 128))]
    be = make_backend(fake_pynq, tmp_path)
    in_b, out_b = be.reserve((40, op.w.k, op.w.n) for op in ops)
    assert in_b > 0 and out_b > 0
    for op in ops:
        be.gemm(*rand_x(rng, 1, op.w.k), op)
    n_alloc, n_flush = fake_pynq.STATS["allocate"], fake_pynq.STATS["flush"]
    for op in ops:
        for m in (1, 17, 40):
            x, sx = rand_x(rng, m, op.w.k)
            y, _ = be.gemm(x, sx, op)
            assert np.array_equal(y.view(np.uint16), reference(x, sx, op).view(np.uint16))
    assert fake_pynq.STATS["allocate"] == n_alloc and be.reallocations == 0
    assert fake_pynq.STATS["flush"] - n_flush == 9  # the activation buffer only, once per call


def test_weights_not_flushed_are_detected(fake_pynq, tmp_path):
    """The fake's memory is what was flushed: a weight buffer whose lines never reached DDR reads as zeros, which
    the kernel's segment check reports (status bad weight segment) instead of returning wrong numbers quietly."""
    from host.pynq_backend import PynqBackendError

    be = make_backend(fake_pynq, tmp_path)
    rng = np.random.default_rng(12)
    op = rand_op(rng, 64, 32, (8, 8), density=1.0)
    x, sx = rand_x(rng, 4, 64)
    be.gemm(x, sx, op)
    be._resident[id(op)][1]._device[:] = 0  # as if the CPU cache still held the segment
    with pytest.raises(PynqBackendError, match="bad weight segment"):
        be.gemm(x, sx, op)


def test_attention_operands_use_one_scratch_buffer(fake_pynq, tmp_path):
    be = make_backend(fake_pynq, tmp_path)
    rng = np.random.default_rng(13)
    for _ in range(3):
        op = rand_op(rng, 64, 48, (8, 8), density=1.0, resident=False)
        x, sx = rand_x(rng, 5, 64)
        y, _ = be.gemm(x, sx, op)
        assert np.array_equal(y.view(np.uint16), reference(x, sx, op).view(np.uint16))
    assert not be._resident and be._scratch is not None


def test_large_gemm_split_along_m_when_dma_length_is_small(fake_pynq, tmp_path):
    """A stream longer than the DMA's length register is split at chunk boundaries: same result, and each run's
    counter equals the model of that run."""
    from host.pynq_backend import rows_per_call

    fake_pynq.CONFIG.length_width = 12  # 4 KiB per transfer (backend refuses < 26 bits)
    with pytest.raises(Exception, match="buffer-length register is 12 bits"):
        make_backend(fake_pynq, tmp_path)
    fake_pynq.CONFIG.length_width = 26
    be = make_backend(fake_pynq, tmp_path)
    be.dma_max_bytes = (1 << 14) - 1  # as if the register had the 14-bit default
    rng = np.random.default_rng(5)
    op = rand_op(rng, 64, 32, (8, 8), density=1.0)
    m = 600
    x, sx = rand_x(rng, m, 64)
    y, cycles = be.gemm(x, sx, op)
    assert np.array_equal(y.view(np.uint16), reference(x, sx, op).view(np.uint16))
    runs = be.last_cycles
    per = rows_per_call(m, 64, 32, (8, 8), 16, be.dma_max_bytes)
    assert len(runs) > 1 and cycles == sum(runs) and per % 16 == 0
    expect = [kernel_cycles(min(per, m - r0), 64, 32, op.w.nnz_per_colblock, 8, 16) for r0 in range(0, m, per)]
    assert runs == expect


def test_n_and_k_beyond_kernel_limits_are_refused(fake_pynq, tmp_path):
    """The backend runs what fits the kernel; wider layers are split by the driver (host.driver.split_columns)."""
    be = make_backend(fake_pynq, tmp_path)
    rng = np.random.default_rng(6)
    op = rand_op(rng, 16, 4100, (8, 8), density=0.3)
    with pytest.raises(ValueError, match="exceed the kernel limits"):
        be.gemm(*rand_x(rng, 2, 16), op)


def test_dma_that_never_completes_times_out_and_reset_recovers(fake_pynq, tmp_path):
    """After a time-out, reset() must give a working overlay: pynq's cached DMA channels come back halted after
    a bitstream download, so reset() builds a new Overlay (the fake models the halted channels)."""
    from host.errors import AcceleratorTimeoutError

    be = make_backend(fake_pynq, tmp_path, timeout_s=0.3)
    fake_pynq.CONFIG.mode = "hang"
    rng = np.random.default_rng(7)
    op = rand_op(rng, 64, 64, (8, 8))
    x, sx = rand_x(rng, 5, 64)
    t0 = time.monotonic()
    with pytest.raises(AcceleratorTimeoutError) as ei:
        be.gemm(x, sx, op)
    assert time.monotonic() - t0 < 2.0
    msg = str(ei.value)
    assert "TLAST" in msg and "14-bit" in msg and "word count" in msg
    with pytest.raises(AcceleratorTimeoutError, match="reset"):
        be.gemm(x, sx, op)
    fake_pynq.CONFIG.mode = "normal"
    old = be.overlay
    old.download()  # what the earlier reset() did: the cached channels are now halted
    with pytest.raises(RuntimeError, match="not started"):
        old.axi_dma.sendchannel.transfer(be._in_buf, 0, 8)
    be.reset()
    assert be.overlay is not old
    y, _ = be.gemm(x, sx, op)
    assert np.array_equal(y.view(np.uint16), reference(x, sx, op).view(np.uint16))


@pytest.mark.parametrize("mode", ["drop_last_word", "extra_word"])
def test_word_count_mismatch_times_out(fake_pynq, tmp_path, mode):
    """One input word short: the kernel waits forever; one too many: MM2S never completes."""
    from host.errors import AcceleratorTimeoutError

    be = make_backend(fake_pynq, tmp_path, timeout_s=0.2)
    fake_pynq.CONFIG.mode = mode
    rng = np.random.default_rng(8)
    op = rand_op(rng, 64, 64, (8, 8))
    with pytest.raises(AcceleratorTimeoutError, match="did not finish"):
        be.gemm(*rand_x(rng, 5, 64), op)


def test_wrong_array_size_is_reported(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackend, PynqBackendError

    fake_pynq.CONFIG.array = 16
    with pytest.raises(PynqBackendError, match=r"holds a 16x16 array but the weight package is tiled 8x8"):
        PynqBackend(array=(8, 8), bitfile=tmp_path / "sasp_gemm_16.bit", board="pynq-z2")


def test_wrong_kernel_version_is_reported(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackendError

    fake_pynq.CONFIG.id_version = 0x53410100
    with pytest.raises(PynqBackendError, match=r"ID/version register reads 0x53410100.*expects 0x53410200"):
        make_backend(fake_pynq, tmp_path)


def test_hwh_register_offsets_must_match_interface(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackendError

    fake_pynq.CONFIG.hwh_offsets = {"cycles": 0x48}
    with pytest.raises(PynqBackendError, match=r"cycles: hwh 0x48, interface.json 0x68"):
        make_backend(fake_pynq, tmp_path)


@pytest.mark.parametrize("hwh_registers", [True, False])
def test_wrong_interface_json_fails_against_the_fixture(fake_pynq, tmp_path, hwh_registers):
    """An interface.json with the old 8-byte output layout (Vivado HLS) must not pass: with register names in the
    .hwh the cross-check refuses it; without them the probe reads the wrong registers."""
    from host.pynq_backend import PynqBackendError

    raw = json.loads(INTERFACE.read_text())
    for reg in raw["s_axilite"]["registers"]:
        if reg["name"] == "status":
            reg["offset"], reg["ap_vld_offset"] = "0x80", "0x84"
    bad = tmp_path / "interface.json"
    bad.write_text(json.dumps(raw))
    fake_pynq.CONFIG.hwh_registers = hwh_registers
    match = "register offsets differ" if hwh_registers else "probe run left status"
    with pytest.raises(PynqBackendError, match=match):
        make_backend(fake_pynq, tmp_path, interface=bad)


def test_chunk_above_kernel_limit_is_refused(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackendError

    with pytest.raises(PynqBackendError, match="at most 16 rows"):
        make_backend(fake_pynq, tmp_path, chunk=32)


def test_missing_bitstream_and_hwh(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackend, PynqBackendError

    with pytest.raises(PynqBackendError, match=r"make -C overlay BOARD=pynq-z2 ARRAY=8"):
        PynqBackend(array=8, bitfile=tmp_path / "nope" / "sasp_gemm_8.bit", board="pynq-z2")
    (tmp_path / "sasp_gemm_8.hwh").unlink()
    with pytest.raises(PynqBackendError, match=r"\.hwh"):
        PynqBackend(array=8, bitfile=tmp_path / "sasp_gemm_8.bit", board="pynq-z2")


def test_default_bitfile_path():
    from host.boards import resolve_board
    from host.pynq_backend import default_bitfile

    assert default_bitfile("pynq-z2", 8) == ROOT / "overlay" / "build" / "pynq-z2" / "sasp_gemm_8.bit"
    assert resolve_board("Pynq-Z2") == "pynq-z2"
    assert resolve_board("Ultra96V2") == "ultra96-v2"


def test_backend_in_accelerator(fake_pynq, tmp_path):
    """The pynq backend equals the emulated backend bit for bit (outputs and schedule counter)."""
    from host.driver import EmulatedBackend

    be = make_backend(fake_pynq, tmp_path)
    emu = EmulatedBackend((8, 8), chunk=16)
    rng = np.random.default_rng(9)
    op = rand_op(rng, 96, 40, (8, 8))
    x, sx = rand_x(rng, 33, 96)
    assert np.array_equal(be.gemm(x, sx, op)[0].view(np.uint16), emu.gemm(x, sx, op)[0].view(np.uint16))
    assert be.gemm(x, sx, op)[1] == emu.gemm(x, sx, op)[1]


def test_board_suite_dry_run_against_fake(fake_pynq, tmp_path):
    """Run board_tests/ (except the end-to-end transcription) against the fake pynq, so that the board suite's
    own code is exercised in CI: every Whisper shape through the backend, cycle counters vs the model, the
    largest transfers. The results file is labelled as a dry run, never as a board measurement."""
    import os
    import subprocess

    env = dict(os.environ, SASP_BOARD_TESTS_FAKE="1", PYTHONPATH=os.pathsep.join([str(FAKE_DIR), str(ROOT)]))
    out = tmp_path / "dry.json"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "board_tests"),
         "-k", "not end_to_end", "--board", "pynq-z2", "--bitfile", str(tmp_path / "sasp_gemm_8.bit"),
         "--results", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "passed" in res.stdout and "failed" not in res.stdout
    data = json.loads(out.read_text())
    assert data["label"].startswith("CI DRY RUN")
    assert {g["name"] for g in data["gemm"]} >= {"encoder.mlp.fc1", "decoder.logits (N split)"}
    assert all(g["cycle_ratio"] == 1.0 for g in data["gemm"])


def test_board_suite_skips_off_board_with_one_reason(monkeypatch):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "SASP_BOARD_TESTS_FAKE"}
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(ROOT / "board_tests")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    skipped = [ln for ln in res.stdout.splitlines() if ln.startswith("SKIPPED")]
    assert len(skipped) == 1 and "not on a PYNQ board" in skipped[0], res.stdout[-3000:]
    assert " passed" not in res.stdout


@pytest.mark.slow
def test_board_end_to_end_dry_run_against_fake(fake_pynq, tmp_path, dense_package8):
    """board_tests' end-to-end transcription with the pynq backend on the fake (C-simulated kernel behind the fake
    DMA) must give the reference backend's tokens; checks the board test's own plumbing, not the board."""
    import os
    import subprocess

    env = dict(os.environ, SASP_BOARD_TESTS_FAKE="1", PYTHONPATH=os.pathsep.join([str(FAKE_DIR), str(ROOT)]))
    out = tmp_path / "e2e.json"
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "board_tests"),
         "-k", "end_to_end", "--board", "pynq-z2", "--bitfile", str(tmp_path / "sasp_gemm_8.bit"),
         "--package", str(dense_package8), "--results", str(out), "--timeout-s", "600"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert res.returncode == 0 and "1 passed" in res.stdout, res.stdout[-4000:] + res.stderr[-2000:]
    e2e = json.loads(out.read_text())["end_to_end"]
    assert e2e["transcript"] == e2e["emulated_transcript"] and e2e["transcript"]
    assert e2e["kernel_cycles_measured"] == e2e["kernel_cycles_model"] > 0
