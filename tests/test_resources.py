"""The modeled resource estimator (host/resources.py) and the shared board profiles (host/data/boards.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from host import resources
from host.boards import BOARDS_JSON, UnknownBoardError, all_boards, board_for_array, load_boards, resolve_board
from host.resources import DEVICE_TOTALS, estimate_resources

ROOT = Path(__file__).resolve().parents[1]


def test_device_totals_match_datasheets():
    assert DEVICE_TOTALS["pynq-z2"] == {"DSP": 220, "BRAM36": 140, "LUT": 53200, "FF": 106400}
    assert DEVICE_TOTALS["ultra96-v2"] == {"DSP": 360, "BRAM36": 216, "LUT": 70560, "FF": 141120}


def test_board_profiles_complete():
    boards = load_boards()
    assert set(boards) >= {"pynq-z2", "ultra96-v2"}
    for name, p in boards.items():
        for key in ("part", "resources", "pl_clock_mhz", "cpu", "memory", "stream", "power", "kernel_chunk"):
            assert key in p, f"{name}: missing {key}"
        assert p["cpu"]["cores"] >= 1 and p["cpu"]["clock_mhz"] > 0
        assert p["stream"]["bytes_per_s"] <= p["stream"]["peak_bytes_per_s"]
        # the stream peak is 8 bytes per PL clock (64-bit AXI4-Stream)
        assert p["stream"]["peak_bytes_per_s"] == p["stream"]["width_bits"] // 8 * p["pl_clock_mhz"] * 10**6
        assert p["power"]["basis"], f"{name}: power figures need a stated source"
    assert boards["pynq-z2"]["power"]["sensors"] is False
    assert boards["pynq-z2"]["part"] == "xc7z020clg400-1"
    assert boards["ultra96-v2"]["part"].startswith("xczu3eg-sbva484-1")


@pytest.mark.parametrize("board", ["pynq-z2", "ultra96-v2"])
@pytest.mark.parametrize("array", resources.ARRAY_SIZES)
def test_estimate_fields(board, array):
    e = estimate_resources(array, board)
    assert e["label"] == "modeled"
    for k in ("DSP", "BRAM36", "LUT", "FF"):
        assert e[k] > 0
        assert e["utilization"][k] == pytest.approx(e[k] / DEVICE_TOTALS[board][k])
    assert e["fits"] == (not e["over"])
    r, c = array
    assert e["DSP"] == r * c + resources.EPILOGUE["DSP"]  # one DSP per int8 MAC (macs_per_dsp = 1), + epilogue


@pytest.mark.parametrize("board", ["pynq-z2", "ultra96-v2"])
def test_monotone_in_array_size(board):
    prev = None
    for a in (8, 16, 32):
        e = estimate_resources(a, board)
        if prev:
            for k in ("DSP", "BRAM36", "LUT", "FF"):
                assert e[k] >= prev[k], (k, a)
        prev = e


def test_which_arrays_fit():
    fits = {b: [a for a in resources.ARRAY_SIZES if estimate_resources(a, b)["fits"]] for b in DEVICE_TOTALS}
    # PYNQ-Z2: 16x12 = 192 MACs + 24 epilogue DSPs is the largest array under its 220 DSP48E1
    assert fits["pynq-z2"] == [(8, 8), (16, 8), (8, 16), (16, 12)]
    assert fits["ultra96-v2"] == [(8, 8), (16, 8), (8, 16), (16, 12), (16, 16)]  # 32x32 needs 1048 DSP > 360
    assert "DSP" in estimate_resources(16, "pynq-z2")["over"]


def test_bram_from_activation_buffer():
    # 8x8 on the PYNQ-Z2: act = 2 buffers x (96*192 words of 64 bits: 2 lanes x 36 BRAM18) = 144 BRAM18;
    # rows FIFO 192 x 256 bits = 8 lanes x 1 = 8; acc 8 x 1; row scales + m_axi buffer 3 -> 163 / 2 BRAM36
    assert resources.kernel_bram36(8, 8, 96) == 81.5
    assert estimate_resources(8, "pynq-z2")["BRAM36"] == 84.5
    # a larger chunk can overflow the BRAM of the smaller device
    assert not estimate_resources(8, "pynq-z2", chunk=192)["fits"]


def test_rejects_bad_array_and_board():
    for bad in ((3, 3), 4, 12, (8, 6)):
        with pytest.raises(ValueError, match="multiple of 8"):
            estimate_resources(bad, "pynq-z2")
    with pytest.raises(ValueError, match="unknown board"):
        estimate_resources(8, "zcu104")


def test_resource_table_rows_are_the_estimates():
    """`python -m host.resources` prints one row per board and array (and the packed builds on DSP48E2 boards),
    each the estimate's figures and verdict."""
    res = subprocess.run([sys.executable, "-m", "host.resources"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == resources.resource_table()
    rows = [line.strip("|").split("|") for line in res.stdout.splitlines()[2:]]
    want = [
        (b.key, a, pack)
        for b in all_boards()
        for a, pack in [(a, False) for a in resources.ARRAY_SIZES]
        + [(a, True) for a in (resources.PACKED_ARRAYS if b.family == "zynquplus" else ())]
    ]
    assert len(rows) == len(want)
    for row, (board, (r, c), pack) in zip(rows, want):
        e = estimate_resources((r, c), board, dsp_pack=pack)
        cells = [x.strip() for x in row]
        assert cells[:2] == [board, f"{r}x{c}" + (" packed" if pack else "")]
        assert [float(x.split()[0]) for x in cells[2:6]] == [e[k] for k in ("DSP", "BRAM36", "LUT", "FF")]
        assert cells[6] == ("yes" if e["fits"] else f"no ({', '.join(e['over'])})")


def test_boards_json_is_package_data():
    # host/data/*.json ships with the package (pyproject [tool.setuptools.package-data] host = ["data/*"])
    assert BOARDS_JSON.is_file()
    json.loads(BOARDS_JSON.read_text())


def test_dsp_packing_only_on_dsp48e2():
    packed = estimate_resources((16, 32), "ultra96-v2", dsp_pack=True)
    assert packed["DSP"] == 16 * 32 // 2 + resources.EPILOGUE["DSP"] and packed["fits"]
    with pytest.raises(ValueError, match="pre-adder"):
        estimate_resources(8, "pynq-z2", dsp_pack=True)


def test_default_array_is_the_largest_square_that_fits():
    for b in all_boards():
        squares = [r for r, c in resources.ARRAY_SIZES if r == c and estimate_resources(r, b.key)["fits"]]
        assert b.default_array == max(squares), b.key


def test_board_names(monkeypatch):
    """Keys and aliases in any case or punctuation, the PYNQ image's $BOARD, and the board a tile is modeled on."""
    for name in ("pynq-z2", "Pynq-Z2", "PYNQZ2", "pynq_z2"):
        assert resolve_board(name) == "pynq-z2"
    for name in ("ultra96-v2", "Ultra96V2", "ultra96", "Ultra 96 V2"):
        assert resolve_board(name) == "ultra96-v2"
    monkeypatch.setenv("BOARD", "Ultra96V2")
    assert resolve_board(None) == "ultra96-v2"
    with pytest.raises(UnknownBoardError, match=r"unknown board 'zedboard'; known boards: pynq-z2, ultra96-v2"):
        resolve_board("zedboard")
    monkeypatch.delenv("BOARD")
    with pytest.raises(UnknownBoardError, match=r"no board given and \$BOARD is not set"):
        resolve_board(None)
    assert [board_for_array(a) for a in (8, 12, 16, 32)] == ["pynq-z2", "ultra96-v2", "ultra96-v2", "ultra96-v2"]
