"""Shared fixtures: tiny scenario settings and a runner for the ``driving`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TINY = {"vehicles_count": 8, "duration": 3}
"""Overrides that make a highway episode take well under a second (15 decisions)."""


@pytest.fixture
def tiny() -> dict:
    """A fresh copy of the tiny highway overrides."""
    return dict(TINY)


def run_driving(
    args: Sequence[str], cwd: Path | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``driving ARGS`` in a subprocess (the real console entry point) and capture it."""
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "driving.cli", *args],
        cwd=cwd or REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def driving_cli() -> Callable[..., subprocess.CompletedProcess]:
    """The :func:`run_driving` runner."""
    return run_driving


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """A user mistake: exit status 2, no traceback, one error line naming the problem."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
