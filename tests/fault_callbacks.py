"""Test-only Lightning callbacks, referenced by class path from the fault tests' configs."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import lightning.pytorch as pl
import torch


def optimizer_digest(state: dict[str, Any]) -> str:
    """A digest of an optimizer ``state_dict()``'s tensors and step counts (order-stable)."""
    h = hashlib.sha256()
    for key in sorted(state["state"]):
        for name in sorted(state["state"][key]):
            value = state["state"][key][name]
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            h.update(f"{key}.{name}".encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class SlowSteps(pl.Callback):
    """Sleep after every training batch, so a test can kill the run mid-epoch."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)


class RecordResume(pl.Callback):
    """Write the step count and optimizer digest the run starts (or resumes) training with."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state = trainer.optimizers[0].state_dict()
        with open(self.path, "w") as fh:
            json.dump(
                {"global_step": trainer.global_step, "optimizer_digest": optimizer_digest(state)},
                fh,
            )
