"""Check the Vitis HLS C-synthesis reports of sasp_gemm: every pipelined loop at II=1 and the estimated clock
period within the target. Reads ``<project>/sol/syn/report/*csynth.xml`` (elements ``PipelineII`` per loop,
``EstimatedClockPeriod``, ``TargetClockPeriod``, ``AreaEstimates/Resources``), prints a summary, writes it as
JSON beside the project and exits 1 on a miss.

    python3 hls/scripts/check_reports.py --board pynq-z2 --array 16x12 [--project DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

HLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HLS.parent))  # the repository: host.boards (numpy-free)
from host.boards import UnknownBoardError, resolve_board  # noqa: E402


def loops(root: ET.Element) -> List[Dict[str, str]]:
    """Every loop entry with a PipelineII (its element name or <Name>, and the achieved II)."""
    out = []
    for el in root.iter():
        ii = el.find("PipelineII")
        if ii is not None:
            name = el.findtext("Name") or el.tag
            out.append({"loop": name, "ii": (ii.text or "").strip(), "depth": (el.findtext("PipelineDepth") or "")})
    return out


def check(report_dir: Path) -> dict:
    files = sorted(report_dir.glob("*csynth.xml"))
    if not files:
        raise FileNotFoundError(f"no *csynth.xml in {report_dir}: run `make -C hls synth` first")
    result: dict = {"loops": [], "failures": []}
    for f in files:
        root = ET.parse(f).getroot()
        for lp in loops(root):
            lp["report"] = f.name
            result["loops"].append(lp)
            if lp["ii"].isdigit() and int(lp["ii"]) != 1:
                result["failures"].append(f"{f.name}: loop {lp['loop']} at II={lp['ii']} (needs 1)")
    top = next((f for f in files if f.name in ("csynth.xml", "sasp_gemm_csynth.xml")), files[0])
    root = ET.parse(top).getroot()
    target = float(root.findtext(".//TargetClockPeriod") or "nan")
    est = float(root.findtext(".//EstimatedClockPeriod") or "nan")
    result.update(target_ns=target, estimated_ns=est)
    if not est <= target:
        result["failures"].append(f"estimated clock period {est} ns misses the target {target} ns")
    res = root.find(".//AreaEstimates/Resources")
    result["resources"] = {el.tag: el.text for el in res} if res is not None else {}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", required=True)
    ap.add_argument("--array", required=True)
    ap.add_argument("--project", type=Path, help="Vitis HLS project (default: newest matching hls/build/vitis_*)")
    args = ap.parse_args(argv)
    try:
        board = resolve_board(args.board)  # hls/scripts/common.tcl names the project by the boards.json key
    except UnknownBoardError as e:
        ap.error(str(e))
    found = HLS.glob(f"build/vitis_{board}_a{args.array}_c*")
    proj = args.project or max(found, key=lambda p: p.stat().st_mtime, default=None)
    if proj is None:
        print(f"check_reports: no project hls/build/vitis_{board}_a{args.array}_c*", file=sys.stderr)
        return 2
    result = check(proj / "sol" / "syn" / "report")
    (proj / "check_reports.json").write_text(json.dumps(result, indent=2))
    for lp in result["loops"]:
        print(f"  {lp['report']:<40} {lp['loop']:<32} II={lp['ii']} depth={lp['depth']}")
    print(f"  clock: estimated {result['estimated_ns']} ns, target {result['target_ns']} ns")
    print(f"  resources: {result['resources']}")
    for f in result["failures"]:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
