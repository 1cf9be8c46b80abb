#!/bin/bash
# Session 36's GPU run of benchmarks/distill_grid.py (issue 18, docs/pruning.md): three processes share the GPU (the
# per-clip loops of the trimmed-window loss leave it mostly idle with one), each one tile x sparsity; every shard is
# saved as soon as its row is scored, so a run stopped at the lease's limit keeps what it finished.
# .whl: wheels the GPU image lacks (soundfile, cffi, pycparser, jiwer, rapidfuzz; /work/.library/device/README.md),
# installed when present. Here (CPU smoke test): SKIP_WHL=1 PY=.venv/bin/python bash ... DEVICE=cpu
# Usage: bash benchmarks/distill_grid_gpu.sh BUNDLE OUTDIR DEVICE STEPS TRAIN_S BUDGET_S TIMEOUT_S
#   session 36: bash benchmarks/distill_grid_gpu.sh .device/bundle $OUT cuda 400 170 490 540
set -u
B=$1; O=$2; DEV=$3; STEPS=$4; TRAIN_S=$5; BUDGET=$6; TMO=$7
if [ -d .whl ] && [ -z "${SKIP_WHL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
G=/tmp/g; rm -rf $G; mkdir -p $G $O
COMMON="--bundle $B --device $DEV --schedules oneshot --trim --steps $STEPS --batch 16 --lr 3e-5 --extras --budget-s $BUDGET"
job() { tag=$1; shift; timeout $TMO $PY benchmarks/distill_grid.py run $COMMON --out $G/$tag "$@" > $G/$tag.log 2>&1; echo "job $tag exit $?"; }
# four 30 % shards (~12.5 MiB each) fill the 64 MiB that comes back; the 20 % row is scored on the GPU only
job a --tiles 8 --sparsity 0.3 --data train all --train-s $TRAIN_S --shards t8-s0.30-oneshot t8-s0.30-oneshot-all &
job b --tiles 16 --sparsity 0.3 --data train all --train-s $TRAIN_S --shards t16-s0.30-oneshot t16-s0.30-oneshot-all &
job c --tiles 8 --sparsity 0.2 --data all --shards none &
wait
$PY - "$G" "$O" <<'PYEOF'
import json, sys
from pathlib import Path
g, o = Path(sys.argv[1]), Path(sys.argv[2])
rows = []
for tag in "abc":
    f = g / tag / "results.json"
    rows += [{"job": tag, **r} for r in json.loads(f.read_text())] if f.exists() else [{"job": tag, "missing": True}]
(o / "results.json").write_text(json.dumps(rows, indent=1))
for r in rows:
    print(json.dumps(r))
PYEOF
cp $G/*/shard-*.npz $O/ 2>/dev/null
for tag in a b c; do echo "== $tag"; tr '\r' '\n' < $G/$tag.log | grep -v "it/s\|layer/s\|s/layer\|clip/s\|s/clip" | tail -15; done > $O/log.txt
ls -la $O
