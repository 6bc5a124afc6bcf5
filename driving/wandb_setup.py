"""Weights & Biases defaults: offline unless the user has logged in.

Runs are written under ``./wandb`` and can be uploaded later with ``wandb sync``. A user who has
set ``WANDB_API_KEY`` or run ``wandb login`` (a ``~/.netrc`` entry for api.wandb.ai) gets online
runs; an explicit ``WANDB_MODE`` always wins.
"""

from __future__ import annotations

import netrc
import os


def logged_in() -> bool:
    """Whether W&B credentials are available (API key in the environment or ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def default_wandb_mode() -> str:
    """Set ``WANDB_MODE`` to ``offline`` when unset and not logged in; return the mode."""
    if "WANDB_MODE" not in os.environ and not logged_in():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    return os.environ.get("WANDB_MODE", "online")
