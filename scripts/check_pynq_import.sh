#!/usr/bin/env bash
# Check that the real pynq package (pynq 4.x pins numpy<2, so it lives in its own venv, never in the main
# environment) imports next to host.pynq_backend, and that the pynq API the backend relies on is there:
# pynq.Overlay, pynq.allocate, the AXI DMA simple-mode channel's transfer(array, start, nbytes) / wait / idle /
# error / transferred, DefaultIP.read/write, get_rails / DataRecorder. No board needed.
#
#   scripts/check_pynq_import.sh            (venv in ${PYNQ_VENV:-/tmp/pynq-venv}, reused if present)
#   PYNQ_SPEC="pynq==3.0.1" scripts/check_pynq_import.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${PYNQ_VENV:-/tmp/pynq-venv}"
SPEC="${PYNQ_SPEC:-pynq}"
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import pynq" 2>/dev/null; then
  "$VENV/bin/pip" install -q "$SPEC" "numpy<2"
fi
PYTHONPATH="$PWD" "$VENV/bin/python" - <<'PY'
import inspect
import sys

import numpy
import pynq
from pynq.lib import dma

import host.pynq_backend as pb

missing = [n for n in ("Overlay", "allocate", "DefaultIP", "get_rails", "DataRecorder") if not hasattr(pynq, n)]
assert not missing, f"pynq lacks {missing}"
ch = dma._SDMAChannel
for attr in ("transfer", "wait", "idle", "running", "error"):
    assert hasattr(ch, attr), f"pynq.lib.dma._SDMAChannel lacks {attr}"
params = list(inspect.signature(ch.transfer).parameters)
assert params[:4] == ["self", "array", "start", "nbytes"], f"unexpected transfer signature {params}"
assert "transferred" in inspect.getsource(ch.wait), "wait() no longer records the transferred byte count"
assert hasattr(pynq.DefaultIP, "read") and hasattr(pynq.DefaultIP, "write")
assert "c_sg_length_width" in inspect.getsource(dma.DMA), "DMA no longer reads c_sg_length_width from the hwh"
assert hasattr(pb, "PynqBackend") and pb.load_interface()["offsets"]["ap_ctrl"] == 0
print(f"ok: pynq {getattr(pynq, '__version__', '?')} with numpy {numpy.__version__} (python {sys.version.split()[0]}); "
      "host.pynq_backend imports and the DMA/IP API it uses is present")
PY
echo "check_pynq_import: $(( $(date +%s) - start )) s"
