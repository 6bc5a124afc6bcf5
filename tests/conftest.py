"""Shared fixtures (the helpers behind them are in ``tests/support.py``)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.support import TINY, run_driving


@pytest.fixture
def tiny() -> dict:
    """A fresh copy of the tiny highway overrides."""
    return dict(TINY)


@pytest.fixture
def driving_cli() -> Callable[..., subprocess.CompletedProcess]:
    """The :func:`tests.support.run_driving` runner."""
    return run_driving
