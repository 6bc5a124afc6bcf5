"""Helpers shared by the tests: tiny scenario settings, the ``driving`` command in a
subprocess, the one-line-error check. Fixtures wrapping them are in ``conftest.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {"vehicles_count": 8, "duration": 3}
"""Overrides that make a highway episode take well under a second (15 decisions)."""


def run_driving(
    args: Sequence[str], cwd: Path | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``driving ARGS`` in a subprocess (the real console entry point) and capture it."""
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "driving", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """A user mistake: exit status 2, no traceback, one error line naming the problem."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def shipped_config(name: str) -> dict[str, Any]:
    """The shipped ``experiments/NAME.yaml`` as a mapping."""
    return yaml.safe_load((REPO / "experiments" / f"{name}.yaml").read_text())


def tiny_fit_config(name: str, data: Path, run: Path, **trainer: Any) -> dict[str, Any]:
    """The shipped LightningCLI config ``experiments/NAME.yaml`` with only its budget cut: one
    epoch of two batches (``trainer`` overrides), a narrow network, small batches, outputs
    under ``run``, no logger, closed-loop validation and DAgger rounds on tiny episodes."""
    config = shipped_config(name)
    budget = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1}
    config["trainer"].update(
        {**budget, "enable_progress_bar": False, "default_root_dir": str(run), "logger": False},
        **trainer,
    )
    for callback in config["trainer"].get("callbacks", []):
        args = callback.setdefault("init_args", {})
        kind = callback["class_path"].rpartition(".")[2]
        if kind == "ModelCheckpoint":
            args["dirpath"] = str(run / "checkpoints")
        elif kind == "ClosedLoopValidation":
            args.update(every_n_epochs=1, episodes=1, workers=1, overrides=TINY)
        elif kind == "DAgger":
            args.update(every_n_epochs=1, episodes_per_round=2, workers=1, overrides=TINY)
    config["model"]["network"]["width"] = 0.25
    config["data"].update(root=str(data), batch_size=8, num_workers=0)
    return config
