#!/bin/bash
# GPU runs of benchmarks/distill_grid.py (issue 18, docs/pruning.md): one `run` process per job, all sharing the GPU
# (the per-clip parts of the trimmed-window loss leave it mostly idle with one); every shard is saved as soon as its
# row is scored, so a run stopped at the lease's limit keeps what it finished. A call returns at most 8 files of
# 64 MiB in all (/work/.library/device/README.md): four shards (~13 MiB each), results.json and log.txt.
# What travels to the device counts toward one limit (64 MiB in the device README of 2026-12): the carried bundle AND
# the repository's tracked and unignored files, 54 MB at session 51 (git ls-files -co --exclude-standard), of which
# data/ 30 MB of evaluation audio and results/ 13.5 MB of CSVs: beside them, a bundle of 40 MiB is over that limit.
# For the device calls only, untrack the two folders (the files stay on disk; nothing the GPU run reads is in them):
#   git rm -r -q --cached data results && printf '/data/\n' >> .git/info/exclude
# and afterwards: git reset -q -- data results && sed -i '/^\/data\/$/d' .git/info/exclude (checked on a clone:
# 54 MB -> 11 MB of repository files travel, and the index and status come back clean; not yet tried on a device).
# .whl: wheels the GPU image lacks (soundfile, cffi, pycparser, jiwer, rapidfuzz), installed when present.
# Here (CPU smoke test): SKIP_WHL=1 PY=.venv/bin/python bash ... cpu ...
# Usage: bash benchmarks/distill_grid_gpu.sh BUNDLE OUTDIR DEVICE BUDGET_S TIMEOUT_S "TAG: RUN OPTIONS"...
#   each job: `distill_grid.py run` with the common options below, then its own (--tiles, --sparsity, --steps, ...)
# session 36, call 1: bash benchmarks/distill_grid_gpu.sh .device/bundle $OUT cuda 490 540
#   "a: --tiles 8 --sparsity 0.3 --steps 400 --train-s 170 --data train all --shards t8-s0.30-oneshot t8-s0.30-oneshot-all"
#   "b: --tiles 16 --sparsity 0.3 --steps 400 --train-s 170 --data train all --shards t16-s0.30-oneshot t16-s0.30-oneshot-all"
#   "c: --tiles 8 --sparsity 0.2 --steps 400 --data all --no-shards"   (rows and log only; it was `--shards none`)
set -u
B=$1; O=$2; DEV=$3; BUDGET=$4; TMO=$5; shift 5
if [ -d .whl ] && [ -z "${SKIP_WHL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-3}
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null
G=/tmp/g; rm -rf $G; mkdir -p $G $O
COMMON="--bundle $B --device $DEV --schedules oneshot --trim --batch 16 --lr 3e-5 --extras --budget-s $BUDGET"
TAGS=()
for spec in "$@"; do
  tag=${spec%%:*}; TAGS+=("$tag")
  # shellcheck disable=SC2086  # the job's options are words
  (timeout "$TMO" $PY benchmarks/distill_grid.py run $COMMON --out "$G/$tag" ${spec#*:} > "$G/$tag.log" 2>&1
   echo "job $tag exit $?") &
done
wait
$PY - "$G" "$O" "${TAGS[@]}" <<'PYEOF'
import json, sys
from pathlib import Path
g, o, tags = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
rows = []
for tag in tags:
    f = g / tag / "results.json"
    rows += [{"job": tag, **r} for r in json.loads(f.read_text())] if f.exists() else [{"job": tag, "missing": True}]
(o / "results.json").write_text(json.dumps(rows, indent=1))
for r in rows:
    print(json.dumps(r))
PYEOF
cp $G/*/shard-*.npz "$O"/ 2>/dev/null
for tag in "${TAGS[@]}"; do echo "== $tag"; tr '\r' '\n' < "$G/$tag.log" | grep -v "it/s\|layer/s\|s/layer\|clip/s\|s/clip" | tail -15; done > "$O/log.txt"
ls -la "$O"
