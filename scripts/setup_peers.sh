#!/usr/bin/env bash
# The peer benchmark's environment (benchmarks/bench_peers.py): .venv-peers, which sees
# everything in eipnn's .venv (a .pth file pointing at its site-packages, so torch and eipnn
# are the very same) and adds SchNetPack 2.1.1. SchNetPack asks for versions eipnn's core
# set does not have (sympy <= 1.12, its own torch range), so it is installed --no-deps with
# only the modules it imports; torch 2.13 also needs a TypeVar shim (T_co) and
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, which bench_peers.py sets itself. eipnn's .venv is left
# untouched. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_env.sh
PEERS=.venv-peers
if [ ! -x "$PEERS/bin/python" ]; then
  echo "eipnn peers: creating $PEERS"
  python3 -m venv "$PEERS"
fi
core=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
peer=$("$PEERS/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# addsitedir, not a bare path: it also reads the .pth files there (eipnn's editable install).
echo "import site; site.addsitedir('$core')" > "$peer/eipnn-core.pth"
if ! "$PEERS/bin/python" -c "import typing, torch.utils.data.dataloader as d; d.T_co = typing.TypeVar('T_co'); import schnetpack" 2>/dev/null; then
  echo "eipnn peers: installing SchNetPack 2.1.1 (no dependencies) and what it imports"
  "$PEERS/bin/pip" install -q --disable-pip-version-check --no-deps schnetpack==2.1.1 \
    dirsync fasteners h5py omegaconf antlr4-python3-runtime==4.9.3 torch-ema pytorch-lightning \
    torchmetrics lightning-utilities
fi
echo "eipnn peers: ready: $PEERS/bin/python benchmarks/bench_peers.py"
