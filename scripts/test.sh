#!/usr/bin/env bash
# Set up (if needed) and run the linter and the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` or `bash scripts/test.sh tests/test_envs.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
export WANDB_MODE="${WANDB_MODE:-offline}"
exec .venv/bin/python -m pytest "$@"
