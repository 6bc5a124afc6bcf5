#!/usr/bin/env bash
# Create .venv and install the project with its dev tools; safe to run again (it skips the
# install when pyproject.toml has not changed since the last successful one).
# CPU machines get torch 2.13.0 (a CPU wheel is provided on this project's machines); where
# nvidia-smi finds a GPU, pip's default (CUDA) torch build is installed instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: GPU found, installing torch (CUDA build)"
    .venv/bin/python -m pip install -q "torch>=2.13.0"
  else
    echo "setup: no GPU, installing torch==2.13.0 (CPU)"
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
fi
echo "setup: installing the project and its dependencies into .venv"
.venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import torch, highway_env, lightning, wandb, cv2" \
  || { echo "setup: install failed" >&2; exit 1; }
rm -f .venv/.installed-*
touch "$stamp"
