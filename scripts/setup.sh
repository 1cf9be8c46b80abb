#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for this project:
#  - apt: flite + espeak-ng (synthesized test speech), g++ + make (kernel C simulation), tcl (Tcl checks), and
#    python3-venv where the system Python cannot make a virtual environment;
#  - a project virtual environment in .venv (reused if present; it sees the installing Python's packages, so a
#    Python that has them already installs nothing twice): the system Python of Debian 12 / Ubuntu 24.04 refuses
#    pip installs outside one (PEP 668) and has `python3` but no `python`;
#  - pip, into .venv: torch 2.13.0 (CPU build, first, so that nothing pulls a CUDA build), the project with its
#    model and dev extras, and hls4ml without its dependencies (only its ap_types headers are used).
# Afterwards run everything with .venv/bin/python (or `source .venv/bin/activate` first).
# PYTHON=/path/to/python3 picks the interpreter the environment is made from (default: python3, else python).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_install() {
  command -v apt-get >/dev/null || { echo "setup.sh: please install $* (no apt-get here)" >&2; return 1; }
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need=()
for tool in flite espeak-ng g++ make tclsh; do command -v "$tool" >/dev/null || need+=("$tool"); done
[ ${#need[@]} -gt 0 ] && apt_install flite espeak-ng g++ make tcl
py="${PYTHON:-$(command -v python3 || command -v python || true)}"
[ -n "$py" ] || { apt_install python3 python3-venv; py=python3; }
if [ ! -x .venv/bin/python ]; then
  if ! "$py" -m venv --system-site-packages .venv 2>/dev/null; then  # Debian: venv needs python3-venv
    rm -rf .venv
    apt_install python3-venv
    "$py" -m venv --system-site-packages .venv
  fi
fi
pip=(.venv/bin/python -m pip)
"${pip[@]}" install -q --upgrade pip
"${pip[@]}" install -q torch==2.13.0
"${pip[@]}" install -q -e ".[model,dev,sweep]"
"${pip[@]}" install -q --no-deps hls4ml==1.3.0
echo "setup.sh: ready; run the project with .venv/bin/python (or: source .venv/bin/activate)"
