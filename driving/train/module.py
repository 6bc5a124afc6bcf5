"""Behaviour cloning as a LightningModule: regress the expert's action from the pixels.

Loss: Huber (or MSE) per action component, weighted, averaged over the batch. Optimiser: AdamW
with a cosine (to zero over the epochs) or one-cycle schedule, or a constant rate. Logged: the
loss, the learning rate and the open-loop mean absolute error of each action component
(``train/mae_steer``, ``val/mae_accel``, ...). Closed-loop driving is measured by
:class:`driving.train.callbacks.ClosedLoopValidation`.

Checkpoints written by Lightning carry the ``"policy"`` record of
:func:`agents.checkpoint.policy_record` (scenario, specs, network, data counts) and only
primitives in their hyper-parameters, so ``torch.load(ckpt, weights_only=True)`` reads them and
``--agent cnn:CKPT`` drives with them.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from agents.checkpoint import FORMAT, load_policy
from agents.networks import NetworkConfig, build_network
from envs.errors import UserError
from envs.spec import ActionSpec, ObservationSpec

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""``(frames (B, C, H, W), speed (B,) [m/s], labels (B, A))``, as the data module batches them."""


class BehaviourCloning(pl.LightningModule):
    """A policy network fitted to expert labels.

    Args:
        network: the network's hyper-parameters (``kind``, ``width``, ``hidden``, ``dropout``).
        loss: ``"huber"`` or ``"mse"``, per action component.
        huber_delta: Huber's switch from quadratic to linear (normalised action units).
        action_weights: weight of each action component's loss, in the order of the action
            spec (e.g. ``[1.0, 2.0]`` for accel, steer); None: all 1.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW's decoupled weight decay.
        schedule: ``"cosine"`` (decay to 0 over the run's epochs, updated every step),
            ``"onecycle"``, or
            ``"constant"``.
        warmup_fraction: share of the steps spent warming up (one-cycle only).
        channels_last: run convolutions in channels-last memory format (faster on recent GPUs
            with mixed precision).
        init_from: a policy checkpoint whose network weights start the fit (fine-tuning; the
            network settings and specs must match); ``--ckpt_path`` still resumes on top.
        spec: what the data says the network sees and does (the datamodule's ``policy_spec``,
            linked by the CLI): scenario record, observation and action specs, data counts.
    """

    def __init__(
        self,
        network: NetworkConfig = NetworkConfig(),  # noqa: B008 (a frozen-by-convention default)
        loss: Literal["huber", "mse"] = "huber",
        huber_delta: float = 1.0,
        action_weights: list[float] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        schedule: Literal["cosine", "onecycle", "constant"] = "cosine",
        warmup_fraction: float = 0.1,
        channels_last: bool = False,
        init_from: str | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if spec is None:
            raise UserError("the model needs the data's spec (give --data or spec=...)")
        if isinstance(network, dict):
            network = NetworkConfig.from_dict(network)
        self.observation = ObservationSpec.from_dict(spec["observation"])
        self.action = ActionSpec.from_dict(spec["action"])
        weights = [1.0] * self.action.size if action_weights is None else list(action_weights)
        if len(weights) != self.action.size or any(w < 0 for w in weights):
            raise UserError(
                f"action_weights needs {self.action.size} non-negative values "
                f"({', '.join(self.action.names)}), got {action_weights}"
            )
        if loss not in ("huber", "mse") or schedule not in ("cosine", "onecycle", "constant"):
            raise UserError(f"bad loss {loss!r} or schedule {schedule!r}")
        self.save_hyperparameters()
        # Checkpoints are read with weights_only=True: keep hparams primitive (no dataclasses).
        self.hparams["network"] = asdict(network)
        self.hparams["spec"] = dict(spec)
        self.spec = dict(spec)
        self.network_config = network
        self.network = build_network(network, self.observation.shape, self.action.size)
        if channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.register_buffer("loss_weights", torch.tensor(weights, dtype=torch.float32))
        self._batches_done = 0
        self._train_sums: torch.Tensor | None = None  # (1 + A,) loss and errors x samples
        self._train_count = 0

    def forward(self, frames: torch.Tensor, speed: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` pixels and ``(B,)`` ego speeds [m/s] -> ``(B, A)`` actions in
        [-1, 1] (the speed is read only by ``speed_input`` networks)."""
        if self.hparams.channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)
        return self.network(frames, speed)

    def component_losses(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``(A,)`` unweighted loss of each action component, averaged over the batch."""
        if self.hparams.loss == "huber":
            per = F.huber_loss(pred, target, reduction="none", delta=self.hparams.huber_delta)
        else:
            per = F.mse_loss(pred, target, reduction="none")
        return per.mean(dim=0)

    def _losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted loss (a scalar) and the detached ``(A,)`` mean absolute error of each
        action component, over ``batch``."""
        frames, speed, labels = batch
        pred = self(frames, speed).float()
        labels = labels.float()
        per = self.component_losses(pred, labels)
        loss = (per * self.loss_weights).sum() / self.loss_weights.sum().clamp_min(1e-12)
        return loss, (pred - labels).abs().mean(dim=0).detach()

    def _step(self, batch: Batch, stage: str) -> torch.Tensor:
        """A validation or test step: the loss and each component's error, epoch means."""
        loss, mae = self._losses(batch)
        size = batch[0].shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, batch_size=size)
        for i, name in enumerate(self.action.names):
            self.log(f"{stage}/mae_{name}", mae[i], on_epoch=True, batch_size=size)
        return loss

    def training_step(self, batch: Batch, batch_idx: int):
        """One training step. Its metrics are summed on the device and handed to ``self.log``
        only every ``log_every_n_steps`` steps (``train/loss_step``, ``train/lr``) and at the
        epoch's end (``train/loss_epoch``, ``train/mae_*``): four ``self.log`` calls per step
        were most of Lightning's overhead over a bare PyTorch loop on a CPU (issue 19)."""
        self._batches_done = batch_idx + 1  # read by the cosine schedule after this step
        loss, mae = self._losses(batch)
        size = batch[0].shape[0]
        sums = torch.cat([loss.detach().reshape(1), mae]) * size
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        self._train_count += size
        trainer = self._trainer
        if trainer is None or (trainer.global_step + 1) % max(trainer.log_every_n_steps, 1) == 0:
            lr = self.optimizers().param_groups[0]["lr"] if trainer else self.hparams.lr
            self.log("train/lr", lr, on_step=True, on_epoch=False, batch_size=size)
            self.log("train/loss_step", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_train_epoch_start(self) -> None:
        self._train_sums, self._train_count = None, 0

    def on_train_epoch_end(self) -> None:
        """Log the epoch's means of the training loss and errors (one sync with the device)."""
        if self._train_sums is None:
            return
        means = (self._train_sums / self._train_count).tolist()
        self.log("train/loss_epoch", means[0], prog_bar=True)
        for name, value in zip(self.action.names, means[1:], strict=True):
            self.log(f"train/mae_{name}", value)

    def validation_step(self, batch: Batch, batch_idx: int):
        return self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int):
        return self._step(batch, "test")

    def predict_step(self, batch: Batch, batch_idx: int):
        """``(B, A)`` predicted actions of a batch."""
        return self(batch[0], batch[1]).float()

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if self.hparams.schedule == "constant":
            return {"optimizer": opt}
        if self.hparams.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=self.hparams.lr,
                total_steps=total,
                pct_start=self.hparams.warmup_fraction,
            )
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: self._cosine_factor(total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _cosine_factor(self, total_steps: int) -> float:
        """The cosine schedule's share of the peak rate, from 1 at the start to 0 at the end.

        Progress is counted in epochs when the run has ``max_epochs`` (so a dataset that grows
        during the run, as under DAgger, still ends the schedule at its last step instead of
        running the cosine past its end and raising the rate again), in steps otherwise.
        """
        trainer = self.trainer
        batches = trainer.num_training_batches
        if trainer.max_epochs and trainer.max_epochs > 0 and 0 < batches < float("inf"):
            done = trainer.current_epoch + min(self._batches_done / batches, 1.0)
            progress = done / trainer.max_epochs
        else:
            progress = trainer.global_step / total_steps
        return 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))

    def policy_record(self) -> dict[str, Any]:
        """The checkpoint's ``"policy"`` record (data counts refreshed from the datamodule)."""
        spec = dict(self.spec)
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and hasattr(datamodule, "policy_spec"):
            spec.update(datamodule.policy_spec)
        return {**spec, "format": FORMAT, "network": self.network_config.to_dict()}

    def setup(self, stage: str) -> None:
        """Load ``init_from``'s weights before a fit (a resumed checkpoint overrides them)."""
        if stage != "fit" or self.hparams.init_from is None:
            return
        checkpoint = load_policy(self.hparams.init_from)
        mismatch = [
            name
            for name, theirs, ours in (
                ("network", checkpoint.network, self.network_config),
                ("observation", checkpoint.observation, self.observation),
                ("action", checkpoint.action, self.action),
            )
            if theirs != ours
        ]
        if mismatch:
            raise UserError(
                f"init_from {self.hparams.init_from}: the checkpoint's {', '.join(mismatch)} "
                "do not match this model's"
            )
        self.network.load_state_dict(checkpoint.state_dict)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["policy"] = self.policy_record()
