"""Checkpoint files that are never half-written: write beside, flush, then rename.

Lightning's own ``TorchCheckpointIO`` rewrites ``last.ckpt`` in place, so a full disk or a kill
in the middle of a save destroys the previous checkpoint too. :class:`AtomicCheckpointIO`
writes the new checkpoint through :func:`driving.files.atomic_write_bytes` (a temporary file in
the same folder, flushed to disk, then renamed over the old one): a failed save leaves the
previous checkpoint as it was, and the temporary file is removed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from agents.checkpoint import PREFIX, load_policy
from agents.networks import PolicyNetwork
from driving.files import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with write-then-rename saves (local paths)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getbuffer())


def save_policy(path: str | Path, network: PolicyNetwork, record: dict[str, Any]) -> None:
    """Write a bare checkpoint of ``network`` with its :func:`~agents.checkpoint.policy_record`
    (atomically), readable by :func:`~agents.checkpoint.load_policy`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {PREFIX + k: v.detach().cpu() for k, v in network.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"policy": record, "state_dict": state}, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def save_network_of(checkpoint: str | Path, target: str | Path) -> Path:
    """Write the network of ``checkpoint`` (a Lightning or bare one) to ``target`` as a bare
    checkpoint (:func:`save_policy`: weights and policy record, no optimizer state, about a
    third of the size), to be kept with results; return ``target``."""
    policy = load_policy(checkpoint)
    save_policy(target, policy.build(), policy.record)
    return Path(target)
