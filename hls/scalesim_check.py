#!/usr/bin/env python3
"""Cross-check of the dense cycle model (host/cycle_model.py) against SCALE-Sim (weight stationary).

SCALE-Sim pulls numpy 2 / pandas / numba, so run it from its own virtual environment:

    python3 -m venv /tmp/scalesim-venv && /tmp/scalesim-venv/bin/pip install scalesim
    /tmp/scalesim-venv/bin/python hls/scalesim_check.py --arrays 8 16 --m 1500

For every Whisper tiny.en GEMM shape it runs SCALE-Sim's weight-stationary compute model
(scalesim.compute.systolic_compute_ws, same R x C array, GEMM operands M x K and K x N) and prints our
modeled cycles, SCALE-Sim's compute cycles and their ratio. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.cycle_model import dense_nnz, iter_shapes, kernel_cycles  # noqa: E402

CONFIG = """[general]
run_name = sasp_{tag}

[architecture_presets]
ArrayHeight:    {r}
ArrayWidth:     {c}
IfmapSramSzkB:  {sram}
FilterSramSzkB: {sram}
OfmapSramSzkB:  {sram}
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Dataflow : ws
Bandwidth : 64
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def run_scalesim_compute(m: int, k: int, n: int, array: int, workdir: Path, tag: str) -> int:
    """Compute cycles of SCALE-Sim's weight-stationary systolic model for one GEMM.

    Runs scalesim.compute.systolic_compute_ws on the layer's operand matrices and counts the rows of
    its ifmap demand matrix (one row per cycle: per fold R weight-load cycles, the M streamed rows,
    C-1 drain cycles and the R-1 skew). This is SCALE-Sim's 'Total Cycles' when the memory system
    adds no stalls (InterfaceBandwidth CALC); the memory-trace loop itself is skipped because it
    is a Python loop over every cycle (minutes per layer) and scalesim 3.0.0's trace code fails
    under numpy >= 2.3.
    """
    import numpy as np
    from scalesim.compute.systolic_compute_ws import systolic_compute_ws
    from scalesim.scale_config import scale_config

    cfg_path = workdir / f"{tag}.cfg"
    cfg_path.write_text(CONFIG.format(tag=tag, r=array, c=array, sram=4096))
    cfg = scale_config()
    cfg.read_conf_file(str(cfg_path))
    ifmap = np.arange(m * k, dtype=np.float64).reshape(m, k)  # addresses, T x Sr
    filt = np.arange(k * n, dtype=np.float64).reshape(k, n) + 10_000_000  # Sr x Sc
    ofmap = np.arange(m * n, dtype=np.float64).reshape(m, n) + 20_000_000  # T x Sc
    ws = systolic_compute_ws()
    ws.set_params(config_obj=cfg, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap,
                  ifmap_op_mat_original=ifmap)  # fmt: skip
    ws.create_ifmap_demand_mat()
    return int(ws.ifmap_demand_matrix.shape[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arrays", type=int, nargs="+", default=[8, 16])
    p.add_argument("--m", type=int, default=1500, help="rows M (default 1500, the encoder length)")
    p.add_argument("--chunk", type=int, default=96, help="our kernel's chunk (default 96)")
    args = p.parse_args()
    print(f"dense GEMMs, M = {args.m}; ours = host/cycle_model.kernel_cycles (== C-sim counter), chunk {args.chunk}")
    print(f"{'array':>5s} {'layer':16s} {'K':>5s} {'N':>5s} {'ours':>11s} {'SCALE-Sim':>11s} {'ours/SS':>8s}"
          f" {'ideal':>11s} {'SS time':>8s}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for a in args.arrays:
            for name, k, n in iter_shapes():
                ours = kernel_cycles(args.m, k, n, dense_nnz(k, n, a), a, args.chunk)
                ideal = args.m * (-(-k // a)) * (-(-n // a))
                t0 = time.perf_counter()
                ss = run_scalesim_compute(args.m, k, n, a, Path(tmp), f"a{a}_{name.split()[0].replace('/', '')}")
                dt = time.perf_counter() - t0
                print(f"{a:>5d} {name:16s} {k:>5d} {n:>5d} {ours:>11,d} {ss:>11,d} {ours / ss:>8.4f} {ideal:>11,d}"
                      f" {dt:>7.1f}s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
