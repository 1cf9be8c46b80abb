"""End-to-end transcription of the bundled clip on the board: the pynq backend's transcript must equal the
emulated one (the exact integer reference backend, bit-identical to the kernel's C simulation, run on the
board's CPU), with latency and, where the board has rails (Ultra96-V2), power measured and written to the
results JSON. Needs a weight package whose tile matches the overlay: --package PKG or $SASP_PACKAGE."""

from __future__ import annotations

import time

import pytest

from host.audio import DEMO_CLIP, demo_reference, load_audio
from host.boards import board_profile


@pytest.fixture(scope="module")
def package(request, array):
    from host.package import load_package

    path = request.config.getoption("--package")
    if not path:
        pytest.skip("no weight package: pass --package PKG (exported off-board with --tile A, docs/board.md)")
    return load_package(path, expect_tile=(array, array))


def _runtime(package, backend, **kw):
    from host.session import runtime_from_package

    return runtime_from_package(package, backend, **kw)


def test_transcript_matches_emulated(request, package, backend, board, results):
    from host.driver import Accelerator
    from host.power import open_rail_meter
    from host.whisper import WhisperRuntime

    audio = load_audio(DEMO_CLIP)
    prof = board_profile(board)

    ref_rt = _runtime(package, "reference")
    t0 = time.perf_counter()
    ref = ref_rt.transcribe(audio, trim=True)
    ref_s = time.perf_counter() - t0

    acc = Accelerator(package, backend, timeout_s=request.config.getoption("--timeout-s") * 4)
    rt = WhisperRuntime(package.weights, acc)
    rt.transcribe(audio[:16000], trim=True)  # warm-up: buffers, page faults
    acc.take_stats()  # the timed run's counters only
    meter, power_note = open_rail_meter(bool(prof["power"]["sensors"]))
    t0 = time.perf_counter()
    if meter is not None:
        with meter:
            out = rt.transcribe(audio, trim=True)
        energy_j, window_s = meter.energy()
    else:
        out = rt.transcribe(audio, trim=True)
        energy_j = window_s = None
    fpga_s = time.perf_counter() - t0
    tot = acc.stats.total()
    results["end_to_end"] = {
        "clip": str(DEMO_CLIP),
        "audio_s": len(audio) / 16000,
        "transcript": out.text,
        "reference_transcript": demo_reference(),
        "emulated_transcript": ref.text,
        "latency_s": fpga_s,
        "reference_backend_cpu_s": ref_s,
        "accelerator_s": tot.backend_s,
        "host_s": tot.host_s,
        "kernel_cycles_measured": tot.measured_cycles,
        "kernel_cycles_model": tot.cycles,
        "gemm_calls": tot.calls,
        "power": {
            "source": power_note,
            "energy_j": energy_j,
            "window_s": window_s,
            "avg_w": (energy_j / window_s) if energy_j else None,
            "modeled_board_w_active": prof["power"]["model_w_active"],
            "modeled_basis": prof["power"]["basis"],
        },
    }
    assert out.tokens == ref.tokens, f"pynq transcript {out.text!r} != emulated {ref.text!r}"
    assert tot.measured_cycles == tot.cycles, "kernel cycle counters differ from the cycle model"
