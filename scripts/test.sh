#!/usr/bin/env bash
# Set up (if needed) and run the linter and the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` or `bash scripts/test.sh tests/test_envs.py`.
# The tests run in one pytest-xdist process per core (TEST_WORKERS overrides), each test file
# in one process (its module fixtures built once); TEST_WORKERS=0 runs them in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The live-window test needs a virtual display; install Xvfb where we may (CI runs as root).
if ! command -v Xvfb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test: installing xvfb for the live-window test"
  (apt-get install -y -q xvfb >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q xvfb >/dev/null 2>&1)) \
    || echo "test: could not install xvfb; the live-window test will be skipped" >&2
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export WANDB_MODE="${WANDB_MODE:-offline}"
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-auto}" --dist loadfile "$@"
