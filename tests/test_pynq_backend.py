"""host/pynq_backend.py without a board: imports without pynq, register offsets agree with the HLS interface, and
the backend's full call sequence (registers, DMA channels, cache maintenance, stream packing) against a fake
``pynq`` (tests/fake_pynq, a CI-only test double) whose DMA feeds the raw words to the C-simulated kernel."""

from __future__ import annotations

import importlib
import json
import re
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


# ---- register map: one source of truth --------------------------------------------------------------------
def hls_axilite_ports() -> list:
    text = (ROOT / "hls" / "src" / "sasp_gemm.cpp").read_text()
    return re.findall(r"#pragma\s+HLS\s+INTERFACE\s+mode\s*=\s*s_axilite\s+port\s*=\s*(\w+)", text)


def test_offsets_come_from_interface_json():
    from host.pynq_backend import load_interface

    iface = load_interface()
    raw = json.loads(INTERFACE.read_text())
    for reg in raw["s_axilite"]["registers"]:
        assert iface["offsets"][reg["name"]] == int(reg["offset"], 0)
    # every s_axilite argument of the HLS top function has a register, control block included
    ports = [p for p in hls_axilite_ports() if p != "return"]
    assert ports and set(ports) <= set(iface["offsets"])
    assert iface["offsets"]["ap_ctrl"] == 0
    # Vitis HLS layout: control block 0x00-0x0f, then one 8-byte slot per argument in declaration order
    # (outputs: data word + ap_vld word)
    offs = [iface["offsets"][p] for p in ports]
    assert offs == sorted(offs) and len(set(offs)) == len(offs) and offs[0] == 0x10
    assert all(b - a == 8 for a, b in zip(offs, offs[1:]))
    hdr = (ROOT / "hls" / "src" / "sasp_gemm.h").read_text()
    assert iface["id_expected"] == int(re.search(r"SASP_ID_VERSION\s+(0x[0-9a-fA-F]+)u", hdr).group(1), 16)


def test_status_bits_match_header():
    from host import pynq_backend as pb

    hdr = (ROOT / "hls" / "src" / "sasp_gemm.h").read_text()
    consts = {m[0]: int(m[1], 16) for m in re.findall(r"#define\s+(SASP_\w+)\s+(0x[0-9a-fA-F]+)u", hdr)}
    assert consts["SASP_ST_OK"] == pb.ST_OK
    assert consts["SASP_ST_BAD_ARGS"] == pb.ST_BAD_ARGS
    assert consts["SASP_ST_BAD_HEADER"] == pb.ST_BAD_HEADER
    assert consts["SASP_ST_BAD_META"] == pb.ST_BAD_META
    assert consts["SASP_ST_PROBE"] == pb.ST_PROBE
    assert consts["SASP_FLAG_PROBE"] == pb.FLAG_PROBE


def test_dma_width_matches_overlay_tcl():
    from host.pynq_backend import DMA_LENGTH_WIDTH

    tcl = (ROOT / "overlay" / "scripts" / "config.tcl").read_text()
    assert int(re.search(r"variable dma_length_width (\d+)", tcl).group(1)) == DMA_LENGTH_WIDTH


# ---- exact splitting helpers --------------------------------------------------------------------------------
def rand_bsw(rng, k, n, tile, density=0.6):
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    kb, nb = -(-k // tile[0]), -(-n // tile[1])
    keep = rng.random((kb, nb)) < density
    return BlockSparseWeights.from_dense(w, tile, keep)


def test_split_columns_and_k_are_exact():
    from host.pynq_backend import split_columns, split_rows_k

    rng = np.random.default_rng(1)
    w = rand_bsw(rng, 100, 90, (8, 8))
    x = rng.integers(-128, 128, (7, 100)).astype(np.int8)
    ref = w.gemm_int(x)
    y = np.zeros_like(ref)
    for k0, k1, wk in split_rows_k(w, 24):
        wk.validate()
        for c0, wn in split_columns(wk, 16):
            wn.validate()
            assert wn.n <= 16 and wk.k <= 24
            y[:, c0 : c0 + wn.n] += wn.gemm_int(np.ascontiguousarray(x[:, k0:k1]))
    assert np.array_equal(y, ref)


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
    for a in (4, 8):
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


@pytest.mark.parametrize("array", [4, 8])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_bit_exact_with_emulator(fake_pynq, tmp_path, array, m, k, n):
    from host.emulator import EmulatedKernel

    be = make_backend(fake_pynq, tmp_path, array)
    assert be.chunk == 16 and be.array == (array, array)
    rng = np.random.default_rng(m * 1000 + k + n)
    w = rand_bsw(rng, k, n, (array, array))
    x = rng.integers(-128, 128, (m, k)).astype(np.int8)
    y, cycles = be.gemm(x, w)
    y_emu, cyc_emu = EmulatedKernel(array, 16).run(x, w)
    assert y.dtype == np.int32 and np.array_equal(y, y_emu)
    assert np.array_equal(y, w.gemm_int(x))
    assert cycles == cyc_emu == kernel_cycles(m, k, n, w.nnz_per_colblock, array, 16)


def test_register_writes_and_cache_maintenance(fake_pynq, tmp_path):
    from host.pynq_backend import load_interface

    off = load_interface()["offsets"]
    be = make_backend(fake_pynq, tmp_path)
    fake_pynq.reset_stats()
    rng = np.random.default_rng(3)
    w = rand_bsw(rng, 64, 32, (8, 8))
    x = rng.integers(-128, 128, (20, 64)).astype(np.int8)
    be.gemm(x, w)
    writes = dict(fake_pynq.STATS["writes"])
    assert writes[off["m"]] == 20 and writes[off["k"]] == 64 and writes[off["n"]] == 32
    assert writes[off["chunk"]] == 16 and writes[off["flags"]] == 0 and writes[off["ap_ctrl"]] & 1
    assert fake_pynq.STATS["flush"] >= 1 and fake_pynq.STATS["invalidate"] >= 1
    assert fake_pynq.STATS["runs"] == 1


def test_buffers_allocated_once_and_reused(fake_pynq, tmp_path):
    rng = np.random.default_rng(4)
    layers = [rand_bsw(rng, k, n, (8, 8)) for k, n in ((64, 64), (128, 32), (32, 128))]
    be = make_backend(fake_pynq, tmp_path)
    in_b, out_b = be.reserve((40, w) for w in layers)
    assert in_b > 0 and out_b > 0
    n_alloc = fake_pynq.STATS["allocate"]
    for w in layers:
        for m in (1, 17, 40):
            x = rng.integers(-128, 128, (m, w.k)).astype(np.int8)
            y, _ = be.gemm(x, w)
            assert np.array_equal(y, w.gemm_int(x))
    assert fake_pynq.STATS["allocate"] == n_alloc and be.reallocations == 0


def test_large_gemm_split_along_m_when_dma_length_is_small(fake_pynq, tmp_path):
    """A stream longer than the DMA's length register is split at chunk boundaries: same result, and the sum of
    the per-run cycle counters equals the model of the runs."""
    from host.pynq_backend import PynqBackend

    fake_pynq.CONFIG.length_width = 12  # 4 KiB per transfer (backend refuses < 26 bits unless told otherwise)
    with pytest.raises(Exception, match="buffer-length register is 12 bits"):
        make_backend(fake_pynq, tmp_path)
    fake_pynq.CONFIG.length_width = 26
    be = make_backend(fake_pynq, tmp_path)
    be.dma_max_bytes = (1 << 14) - 1  # as if the register had the 14-bit default
    rng = np.random.default_rng(5)
    w = rand_bsw(rng, 64, 32, (8, 8), density=1.0)
    m = 200
    x = rng.integers(-128, 128, (m, 64)).astype(np.int8)
    y, cycles = be.gemm(x, w)
    assert np.array_equal(y, w.gemm_int(x))
    runs = be.last_cycles
    assert len(runs) > 1 and cycles == sum(runs)
    # every run but the last covers a whole number of chunks; the model of each run matches its counter
    rows = m // len(runs) // 16 * 16 or 16
    from host.pynq_backend import rows_per_call

    per = rows_per_call(m, w, 16, be.dma_max_bytes, be.dma_max_bytes)
    assert per % 16 == 0 and per < m
    expect = [kernel_cycles(min(per, m - r0), 64, 32, w.nnz_per_colblock, 8, 16) for r0 in range(0, m, per)]
    assert runs == expect and rows > 0
    assert isinstance(be, PynqBackend)


def test_n_and_k_beyond_kernel_limits_are_split(fake_pynq, tmp_path):
    """The Whisper logits GEMM has N = 51864 > N_max = 4096; K > K_max is split too (exact int32 sums)."""
    be = make_backend(fake_pynq, tmp_path)
    rng = np.random.default_rng(6)
    w = rand_bsw(rng, 16, 4100, (8, 8), density=0.3)
    x = rng.integers(-128, 128, (2, 16)).astype(np.int8)
    y, _ = be.gemm(x, w)
    assert np.array_equal(y, w.gemm_int(x)) and len(be.last_cycles) == 2
    w = rand_bsw(rng, 1600, 16, (8, 8), density=0.5)
    x = rng.integers(-128, 128, (3, 1600)).astype(np.int8)
    y, _ = be.gemm(x, w)
    assert np.array_equal(y, w.gemm_int(x)) and len(be.last_cycles) == 2


def test_dma_that_never_completes_times_out(fake_pynq, tmp_path):
    from host.driver import AcceleratorTimeoutError

    be = make_backend(fake_pynq, tmp_path, timeout_s=0.3)
    fake_pynq.CONFIG.mode = "hang"
    rng = np.random.default_rng(7)
    w = rand_bsw(rng, 64, 64, (8, 8))
    x = rng.integers(-128, 128, (5, 64)).astype(np.int8)
    t0 = time.monotonic()
    with pytest.raises(AcceleratorTimeoutError) as ei:
        be.gemm(x, w)
    assert time.monotonic() - t0 < 2.0
    msg = str(ei.value)
    assert "TLAST" in msg and "14-bit" in msg and "word count" in msg
    # unusable until reset, then fine again
    with pytest.raises(AcceleratorTimeoutError, match="reset"):
        be.gemm(x, w)
    fake_pynq.CONFIG.mode = "normal"
    be.reset()
    y, _ = be.gemm(x, w)
    assert np.array_equal(y, w.gemm_int(x))


@pytest.mark.parametrize("mode", ["drop_last_word", "extra_word"])
def test_word_count_mismatch_times_out(fake_pynq, tmp_path, mode):
    """One input word short: the kernel waits forever; one too many: MM2S never completes."""
    from host.driver import AcceleratorTimeoutError

    be = make_backend(fake_pynq, tmp_path, timeout_s=0.2)
    fake_pynq.CONFIG.mode = mode
    rng = np.random.default_rng(8)
    w = rand_bsw(rng, 64, 64, (8, 8))
    x = rng.integers(-128, 128, (5, 64)).astype(np.int8)
    with pytest.raises(AcceleratorTimeoutError, match="did not finish"):
        be.gemm(x, w)


def test_wrong_array_size_is_reported(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackend, PynqBackendError

    fake_pynq.CONFIG.array = 4
    with pytest.raises(PynqBackendError, match=r"holds a 4x4 array but the weight package is tiled 8x8"):
        PynqBackend(array=(8, 8), bitfile=tmp_path / "sasp_gemm_4.bit", board="pynq-z2")


def test_wrong_kernel_version_is_reported(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackendError

    fake_pynq.CONFIG.id_version = 0x53410200
    with pytest.raises(PynqBackendError, match=r"ID/version register reads 0x53410200.*expects 0x53410100"):
        make_backend(fake_pynq, tmp_path)


def test_hwh_register_offsets_must_match_interface(fake_pynq, tmp_path):
    from host.pynq_backend import PynqBackendError

    fake_pynq.CONFIG.hwh_offsets = {"cycles": 0x58}
    with pytest.raises(PynqBackendError, match=r"cycles: hwh 0x58, interface.json 0x48"):
        make_backend(fake_pynq, tmp_path)


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
    from host.pynq_backend import default_bitfile, resolve_board

    assert default_bitfile("pynq-z2", 8) == ROOT / "overlay" / "build" / "pynq-z2" / "sasp_gemm_8.bit"
    assert resolve_board("Pynq-Z2") == "pynq-z2"
    assert resolve_board("Ultra96V2") == "ultra96-v2"


def test_backend_in_accelerator(fake_pynq, tmp_path):
    """The driver's Accelerator path (quantize, backend.gemm, dequantize) with the pynq backend equals the
    emulated backend bit for bit."""
    from host.driver import EmulatedBackend

    be = make_backend(fake_pynq, tmp_path)
    emu = EmulatedBackend((8, 8), chunk=16)
    rng = np.random.default_rng(9)
    w = rand_bsw(rng, 96, 40, (8, 8))
    x = rng.integers(-128, 128, (33, 96)).astype(np.int8)
    assert np.array_equal(be.gemm(x, w)[0], emu.gemm(x, w)[0])
    assert be.gemm(x, w)[1] == emu.gemm(x, w)[1]


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
