"""Training callbacks: closed-loop validation (with a rollout video), a NaN guard, predictions.

- :class:`ClosedLoopValidation` drives the network being trained on VALIDATION seeds
  (``scenario.validation_seeds``, never the held-out evaluation range) through the project's
  one rollout loop and logs the episode metrics of :mod:`driving.metrics` as
  ``closed_loop/<metric>``; optionally an mp4 of one episode with the saliency overlay, logged
  to W&B as a video.
- :class:`NanGuard` stops training at the first non-finite loss, before its backward pass, so no
  weight is touched and checkpoints written so far stay the last good ones.
- :class:`CollapseGuard` warns when training ends with a network whose output is the same for
  every frame (every unit of a layer dead): a run that cannot be told from a data-starved one
  by its loss alone.
- :class:`PredictionWriter` writes ``driving predict`` output to an ``.npz`` file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

from agents.cnn_agent import CnnAgent
from driving.files import replacing
from driving.metrics import episode_metrics
from driving.overlay import draw_inset
from driving.rollout import iter_episodes
from driving.video import write_video
from envs.errors import RunError

LOGGED_METRICS = ("collided", "completed", "distance_m", "mean_speed_mps", "offroad_time_s")
"""Closed-loop metrics logged every time (means over the episodes)."""


class NonFiniteLossError(RunError):
    """Training met a NaN or infinite loss; the message says where and what is kept."""


class ClosedLoopValidation(pl.Callback):
    """Drive validation episodes with the network in training and log how it drives.

    Args:
        every_n_epochs: run after every this many validation epochs.
        episodes: episodes per run, on the first seeds of the scenario's validation range.
        workers: parallel environments (subprocesses above 1).
        overrides: scenario overrides (e.g. a shorter ``duration``) on top of the dataset's
            scenario; they must keep its observation and action specs.
        video: write an mp4 of the first episode (newest frame, saliency overlay) under
            ``<log_dir>/videos/`` and log it to W&B.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        episodes: int = 4,
        workers: int = 1,
        overrides: dict[str, Any] | None = None,
        video: bool = True,
    ) -> None:
        if every_n_epochs < 1 or episodes < 1 or workers < 1:
            raise ValueError("every_n_epochs, episodes and workers must be >= 1")
        self.every_n_epochs = every_n_epochs
        self.episodes = episodes
        self.workers = workers
        self.overrides = dict(overrides or {})
        self.video = video
        self.last: dict[str, float] = {}

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        if not trainer.is_global_zero:
            return
        scenario = trainer.datamodule.scenario.with_overrides(self.overrides)
        agent = CnnAgent(scenario, pl_module.network, pl_module.policy_record())
        seeds = scenario.validation_seeds.first(self.episodes)
        rows, first = [], None
        for episode in iter_episodes(
            agent, scenario, seeds, workers=self.workers, record_frames=self.video
        ):
            rows.append(episode_metrics(episode))
            if episode.seed == seeds[0]:
                first = episode
        self.last = {k: float(np.mean([r[k] for r in rows])) for k in LOGGED_METRICS}
        for key, value in self.last.items():
            pl_module.log(f"closed_loop/{key}", value, rank_zero_only=True)
        if self.video and first is not None and first.frames is not None:
            self._video(trainer, agent, first.frames, scenario.policy_frequency)

    def _video(self, trainer: pl.Trainer, agent: CnnAgent, frames: np.ndarray, fps: float) -> None:
        saliency = np.concatenate(
            [agent.saliency(frames[i : i + 64]) for i in range(0, len(frames), 64)]
        )
        spec = agent.scenario.observation
        images = [
            draw_inset(f, spec, {"saliency": s}) for f, s in zip(frames, saliency, strict=True)
        ]
        root = Path(trainer.log_dir or trainer.default_root_dir)
        path = root / "videos" / f"closed_loop_epoch{trainer.current_epoch:03d}.mp4"
        try:
            write_video(path, images, fps=fps)
        except Exception as exc:  # a machine without an mp4 encoder must not end the training
            path.unlink(missing_ok=True)
            rank_zero_warn(f"closed-loop video skipped: cannot write {path}: {exc}")
            return
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_video("closed_loop/video", [str(path)], step=trainer.global_step)


class NanGuard(pl.Callback):
    """Stop at the first NaN/inf training loss, before backward and the optimiser step."""

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        if bool(torch.isfinite(loss.detach()).all()):
            return
        kept = [
            cb.best_model_path or cb.last_model_path
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and (cb.best_model_path or cb.last_model_path)
        ]
        where = f"kept last good checkpoint {kept[0]}" if kept else "no checkpoint written yet"
        raise NonFiniteLossError(
            f"training loss is {loss.item()} at epoch {trainer.current_epoch}, step "
            f"{trainer.global_step}; stopped before updating the weights ({where}); "
            "try a lower --model.lr or check the labels"
        )


COLLAPSE_SPREAD = 1e-6
"""Largest standard deviation over a batch of every output component of a collapsed network."""


class CollapseGuard(pl.Callback):
    """Warn at the end of training when the network gives one output for every frame of the last
    training batch. At too high a learning rate every unit of a layer can die early on; the loss
    then stays at what a constant predicts and the run ends without any error (the racetrack
    curve's first points at ``lr`` 0.002, 2026-12-06)."""

    def __init__(self) -> None:
        self._batch: Any = None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._batch = batch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batch, self._batch = self._batch, None
        if batch is None or batch[0].shape[0] < 2:
            return
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            spread = float(pl_module(batch[0], batch[1]).float().std(dim=0).max())
        pl_module.train(was_training)
        if spread < COLLAPSE_SPREAD:
            rank_zero_warn(
                f"training collapsed: the network gives the same action for all "
                f"{batch[0].shape[0]} frames of the last batch (spread {spread:.1e}); its units "
                "died, so its closed-loop figures say nothing about the data; try a lower "
                "--model.lr"
            )


class PredictionWriter(BasePredictionWriter):
    """Write ``driving predict`` output: the network's action for every frame of the dataset.

    The ``.npz`` holds ``predicted`` ``(N, A)`` float32, ``expert`` ``(N, A)`` float32 labels,
    ``episode`` ``(N,)`` seeds, ``step`` ``(N,)`` and ``names`` ``(A,)`` action names.

    Args:
        path: output file; None: ``<log_dir>/predictions.npz``.
    """

    def __init__(self, path: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.path = path
        self.written: Path | None = None

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        data = trainer.datamodule.data
        predicted = torch.cat([p.cpu() for p in predictions]).numpy().astype(np.float32)
        root = Path(trainer.log_dir or trainer.default_root_dir)
        path = Path(self.path) if self.path else root / "predictions.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            np.savez(
                tmp,
                predicted=predicted,
                expert=data.expert_actions[: len(predicted)],
                episode=data.episode[: len(predicted)],
                step=data.step[: len(predicted)],
                names=np.asarray(data.scenario.action.names),
            )
        self.written = path
        print(f"wrote {len(predicted)} predicted actions to {path}")
