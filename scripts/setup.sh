#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for this project:
#  - apt: flite + espeak-ng (synthesized test speech), g++ + make (kernel C simulation), tcl (Tcl checks);
#  - pip: torch 2.13.0 (CPU build, first, so that nothing pulls a CUDA build), the project with its model and
#    dev extras, and hls4ml without its dependencies (only its ap_types headers are used).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in flite espeak-ng g++ make tclsh; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    flite espeak-ng g++ make tcl >/dev/null
fi
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[model,dev,sweep]"
python -m pip install -q --no-deps hls4ml==1.3.0
