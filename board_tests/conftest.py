"""Board test suite: run ON a PYNQ-Z2 / Ultra96-V2 with the overlay built (docs/board.md):

    pytest board_tests [--board pynq-z2] [--array 8] [--bitfile PATH] [--package PKG] [--results PATH]

Anywhere else (no pynq, or no FPGA manager / xdevcfg device) every test is skipped with one reason: this suite
is never reported as passed off-board. It is not collected by the default `pytest` run (pyproject testpaths).
Measurements go to a JSON file (default results/board_<board>_a<A>.json).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FPGA_DEVICES = ("/dev/xdevcfg", "/sys/class/fpga_manager/fpga0")  # Zynq-7000 (older images), FPGA manager


def not_on_board_reason():
    """None on a PYNQ board, else why not."""
    try:
        import pynq  # noqa: F401
    except ImportError:
        return "not on a PYNQ board: the pynq package is not installed (board tests run on the board, docs/board.md)"
    if getattr(pynq, "FAKE", False):
        if os.environ.get("SASP_BOARD_TESTS_FAKE") == "1":
            return None  # CI dry run of this suite against tests/fake_pynq: results are labelled as such
        return "not on a PYNQ board: the CI test double of pynq is loaded"
    if not any(os.path.exists(p) for p in FPGA_DEVICES) and not os.path.exists("/dev/xclmgmt0"):
        return f"not on a PYNQ board: no FPGA device ({', '.join(FPGA_DEVICES)}) to load an overlay"
    return None


def pytest_addoption(parser):
    g = parser.getgroup("sasp board tests")
    g.addoption("--board", default=None, help="pynq-z2 | ultra96-v2 (default: $BOARD of the PYNQ image)")
    g.addoption("--array", type=int, default=None, help="array size A of the overlay (default 8 / 16)")
    g.addoption("--bitfile", default=None, help="overlay .bit (default overlay/build/<board>/sasp_gemm_<A>.bit)")
    g.addoption("--package", default=os.environ.get("SASP_PACKAGE"), help="weight package for the end-to-end test")
    g.addoption("--results", default=None, help="JSON file for the measurements")
    g.addoption("--timeout-s", type=float, default=30.0, help="deadline of one kernel run")


FAKE = os.environ.get("SASP_BOARD_TESTS_FAKE") == "1"
_REASON = []


def pytest_runtest_setup(item):
    """Off-board, every test is skipped here, so pytest reports one reason from one place."""
    if not _REASON:
        _REASON.append(not_on_board_reason())
    if _REASON[0]:
        pytest.skip(_REASON[0])


@pytest.fixture(scope="session")
def board(request):
    from host.boards import resolve_board

    return resolve_board(request.config.getoption("--board"))


@pytest.fixture(scope="session")
def array(request, board):
    from host.boards import board_spec

    return request.config.getoption("--array") or board_spec(board).default_array


@pytest.fixture(scope="session")
def backend(request, board, array):
    from host.pynq_backend import PynqBackend

    if FAKE:
        import pynq

        from host.boards import board_spec

        chunk = os.environ.get("SASP_FAKE_CHUNK") or board_spec(board).kernel_chunk  # the fake is the board's build
        pynq.CONFIG.array, pynq.CONFIG.chunk = array, int(chunk)
    be = PynqBackend(
        array=(array, array),
        bitfile=request.config.getoption("--bitfile"),
        board=board,
        timeout_s=request.config.getoption("--timeout-s"),
    )
    yield be
    be.close()


@pytest.fixture(scope="session")
def results(request, board, array):
    """Measurements collected by the tests, written as JSON when the session ends."""
    data = {
        "board": board,
        "array": array,
        "host": platform.node(),
        "machine": platform.machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "label": "measured on the board",
    }
    if FAKE:
        data["label"] = "CI DRY RUN against tests/fake_pynq (C-simulated kernel): NOT a board measurement"
    yield data
    path = Path(request.config.getoption("--results") or ROOT / "results" / f"board_{board}_a{array}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"\nboard test measurements written to {path}")
