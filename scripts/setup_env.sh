#!/usr/bin/env bash
# Installs what eipnn needs, only where missing: Debian packages (KIM API, the OpenKIM
# model collection the paper used, LAMMPS, a C++ toolchain) and a virtual environment in
# .venv with eipnn installed editable. Safe to run again: it does nothing that is done.
# GPAW (the DFT labeller, docs/dft.md; one tiny calculation runs in the test suite) is
# installed too, from source (~1 min the first time) against Debian's libxc, OpenMPI,
# OpenBLAS and FFTW: EIPNN_DFT=0 leaves it out (the main job does not need it).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libkim-api-dev openkim-models lammps cmake g++ pkg-config python3-venv xxd)
EIPNN_DFT=${EIPNN_DFT:-1}
if [ "$EIPNN_DFT" != 0 ]; then
  APT_PACKAGES+=(libxc-dev libopenmpi-dev libopenblas-dev libfftw3-dev python3-dev)
fi

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
# The DFT extra on its own, so that an existing .venv gains it without a full reinstall.
# GPAW is built from source with FFTW (scripts/gpaw_siteconfig.py), never from a cached wheel
# that may lack it; a .venv whose GPAW lacks FFTW gets it rebuilt once.
export GPAW_CONFIG="$PWD/scripts/gpaw_siteconfig.py"
if [ "$EIPNN_DFT" != 0 ] && ! .venv/bin/python -c "import gpaw, gpaw_data" 2>/dev/null; then
  echo "eipnn setup: installing GPAW and its PAW setups into .venv (builds from source)"
  .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir --no-binary gpaw -e ".[dft]"
fi
if [ "$EIPNN_DFT" != 0 ] && ! .venv/bin/python -c "import gpaw.fftw as f; assert f.have_fftw()" 2>/dev/null; then
  echo "eipnn setup: rebuilding GPAW with FFTW"
  .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir --no-binary gpaw --force-reinstall --no-deps \
    "$(.venv/bin/python -c 'import gpaw; print("gpaw==" + gpaw.__version__)')"
fi
