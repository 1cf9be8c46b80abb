#!/usr/bin/env bash
# Install the project with its model and dev extras into the current Python (torch 2.13.0 CPU build first,
# so that no CUDA build is pulled in), plus hls4ml for the ap_types headers the kernel emulator compiles against.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[model,dev]"
python -m pip install -q --no-deps hls4ml==1.3.0   # headers only: hls4ml/templates/vivado/ap_types
