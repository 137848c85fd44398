#!/usr/bin/env bash
# Runs the test suite (installing what it needs first). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
.venv/bin/python -m pytest "$@"
