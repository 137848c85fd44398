#!/usr/bin/env bash
# The main job: train a small SchNet on si-pbe energies and forces (a few minutes on two CPU
# cores; its quick property card lands in runs/quickstart/property_card/), run 100 steps of
# NVE molecular dynamics with it through ASE, then the same MD and the full property card
# (E-V, elastic constants, vacancy, phonons, 5 ps at 1,000 K; about a minute) of the shipped
# si-pbe-soapnet model, to show what a potential that behaves looks like.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/eipnn-train examples/si_pbe_schnet_tiny.yaml name=quickstart --overwrite "$@"
.venv/bin/python examples/md_with_model.py runs/quickstart/model.pt --steps 100
.venv/bin/python examples/md_with_model.py si-pbe-soapnet --steps 100
.venv/bin/eipnn-validate si-pbe-soapnet -o runs/quickstart/si-pbe-soapnet-card
