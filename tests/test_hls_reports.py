"""hls/scripts/check_reports.py and board_args.py: the Vitis check that `make -C hls synth` runs, on report files
in the csynth.xml format (``<profile>``, ``UserAssignments/TargetClockPeriod``, ``EstimatedClockPeriod``, loops
with ``PipelineII``), and the board arguments taken from host/data/boards.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from host.boards import all_boards

HLS = Path(__file__).resolve().parents[1] / "hls"
sys.path.insert(0, str(HLS / "scripts"))
import board_args  # noqa: E402
import check_reports  # noqa: E402


def report(ii_walk: int, est: float) -> str:
    return f"""<profile>
  <UserAssignments><TopModelName>sasp_gemm</TopModelName><TargetClockPeriod>10.00</TargetClockPeriod></UserAssignments>
  <PerformanceEstimates>
    <SummaryOfTimingAnalysis><EstimatedClockPeriod>{est}</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfLoopLatency>
      <comp_chunks><TripCount>16</TripCount><PipelineII>-</PipelineII>
        <walk><Name>walk</Name><TripCount>undef</TripCount><PipelineII>{ii_walk}</PipelineII><PipelineDepth>14</PipelineDepth></walk>
      </comp_chunks>
      <drain_words><TripCount>undef</TripCount><PipelineII>1</PipelineII><PipelineDepth>19</PipelineDepth></drain_words>
    </SummaryOfLoopLatency>
  </PerformanceEstimates>
  <AreaEstimates><Resources><BRAM_18K>170</BRAM_18K><DSP>216</DSP><FF>20000</FF><LUT>15000</LUT></Resources></AreaEstimates>
</profile>
"""


@pytest.mark.parametrize("ii,est,fails", [(1, 8.1, 0), (2, 8.1, 1), (1, 10.7, 1), (3, 11.0, 2)])
def test_reports_fail_on_ii_or_clock(tmp_path, ii, est, fails):
    (tmp_path / "sasp_gemm_csynth.xml").write_text(report(ii, est))
    res = check_reports.check(tmp_path)
    assert len(res["failures"]) == fails, res["failures"]
    assert {lp["loop"] for lp in res["loops"]} == {"comp_chunks", "walk", "drain_words"}
    assert res["resources"]["DSP"] == "216"


def test_main_writes_summary_and_exit_code(tmp_path, capsys):
    proj = tmp_path / "vitis_pynq-z2_a16x12_c96"
    (proj / "sol" / "syn" / "report").mkdir(parents=True)
    (proj / "sol" / "syn" / "report" / "sasp_gemm_csynth.xml").write_text(report(2, 8.0))
    assert check_reports.main(["--board", "pynq-z2", "--array", "16x12", "--project", str(proj)]) == 1
    assert "walk at II=2" in capsys.readouterr().err
    assert json.loads((proj / "check_reports.json").read_text())["failures"]


@pytest.mark.parametrize("spec", all_boards(), ids=lambda b: b.key)
def test_board_args_come_from_boards_json(spec):
    """Every mode prints the board's boards.json entry, for its key and its aliases."""
    for name in (spec.key, *spec.aliases):
        tcl = board_args.tcl_dict(name).split()
        assert dict(zip(tcl[::2], tcl[1::2])) == {
            "key": spec.key,
            "part": spec.part,
            "board_part": spec.profile["board_part"],
            "clk_mhz": f"{spec.pl_clock_mhz:g}",
            "clock_ns": f"{1000 / spec.pl_clock_mhz:.4g}",
            "chunk": str(spec.kernel_chunk),
        }
        make = dict(kv.split("=") for kv in board_args.make_vars(name).split())
        assert make == {"KEY": spec.key, "PART": spec.part, "CLK_MHZ": f"{spec.pl_clock_mhz:g}",
                        "CHUNK": str(spec.kernel_chunk)}  # fmt: skip


def test_board_args_cli():
    script = HLS / "scripts" / "board_args.py"
    ok = subprocess.run([sys.executable, str(script), "--tcl", "ultra96"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("key ultra96-v2 part xczu3eg-sbva484-1-i "), ok.stderr
    bad = subprocess.run([sys.executable, str(script), "--make", "zcu104"], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown board 'zcu104'" in bad.stderr and not bad.stdout
    usage = subprocess.run([sys.executable, str(script), "pynq-z2"], capture_output=True, text=True)
    assert usage.returncode == 2 and "--tcl" in usage.stderr


def test_check_reports_finds_the_project_by_board_key(tmp_path, monkeypatch, capsys):
    """`make synth BOARD=ultra96` checks hls/build/vitis_ultra96-v2_a16_c192 (common.tcl names it by the key)."""
    proj = tmp_path / "build" / "vitis_ultra96-v2_a16_c192"
    (proj / "sol" / "syn" / "report").mkdir(parents=True)
    (proj / "sol" / "syn" / "report" / "sasp_gemm_csynth.xml").write_text(report(1, 5.0))
    monkeypatch.setattr(check_reports, "HLS", tmp_path)
    assert check_reports.main(["--board", "ultra96", "--array", "16"]) == 0
    assert (proj / "check_reports.json").is_file()
    with pytest.raises(SystemExit):
        check_reports.main(["--board", "zcu104", "--array", "16"])
    assert "unknown board 'zcu104'" in capsys.readouterr().err
