#!/usr/bin/env bash
# Set up (if needed) and run the demo: collect demonstrations, train the small CPU CNN,
# evaluate it and both modular agents on held-out seeds, print the comparison.
# Extra arguments go to `driving demo` (see `driving demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export WANDB_MODE="${WANDB_MODE:-offline}"
exec .venv/bin/driving demo "$@"
