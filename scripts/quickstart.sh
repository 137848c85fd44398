#!/usr/bin/env bash
# The main job: train a small SchNet on si-pbe (about two minutes on two CPU cores),
# export it, and run 100 steps of NVE molecular dynamics with it through ASE.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/eipnn-train examples/si_pbe_schnet_tiny.yaml name=quickstart --overwrite "$@"
.venv/bin/python examples/md_with_model.py runs/quickstart/model.pt --steps 100
