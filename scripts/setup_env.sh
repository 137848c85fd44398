#!/usr/bin/env bash
# Installs what eipnn needs, only where missing: Debian packages (KIM API, the OpenKIM
# model collection the paper used, LAMMPS, a C++ toolchain) and a virtual environment in
# .venv with eipnn installed editable. Safe to run again: it does nothing that is done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libkim-api-dev openkim-models lammps cmake g++ pkg-config python3-venv xxd)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "eipnn setup: installing Debian packages: ${missing[*]}"
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "eipnn setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.eipnn-installed
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "eipnn setup: installing Python packages into .venv"
  # torch is pinned to 2.13.* in setup.py: an unpinned torch pulls the CUDA wheels.
  .venv/bin/pip install -q --disable-pip-version-check -e ".[training,test]"
  touch "$stamp"
fi
