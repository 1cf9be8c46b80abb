"""hls/scripts/check_reports.py and board_args.py: the Vitis check that `make -C hls synth` runs, on report files
in the csynth.xml format (``<profile>``, ``UserAssignments/TargetClockPeriod``, ``EstimatedClockPeriod``, loops
with ``PipelineII``), and the board arguments taken from host/data/boards.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

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


def test_board_args_come_from_boards_json():
    boards = json.loads((HLS.parent / "host" / "data" / "boards.json").read_text())["boards"]
    assert board_args.board_args("pynq-z2") == f"part={boards['pynq-z2']['part']} clock=10 chunk=96"
    assert board_args.board_args("ultra96").startswith("part=xczu3eg-sbva484-1-i clock=6.667 chunk=192")
    with pytest.raises(SystemExit, match="unknown board"):
        board_args.board_args("zcu104")
