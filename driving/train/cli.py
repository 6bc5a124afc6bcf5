"""The Lightning CLI over behaviour cloning (``driving fit|validate|test|predict``).

Exactly as any LightningCLI project (examples in :mod:`driving.commands.fit`).

The model is :class:`driving.train.module.BehaviourCloning`, the data
:class:`driving.train.datamodule.DemoDataModule`; the data's ``policy_spec`` (scenario,
observation and action specs, data counts) is linked into the model when both are built, so a
config never repeats it. Every model, data and trainer option is settable from YAML or flags.

W&B runs are offline unless the user is logged in (:func:`driving.wandb_setup.default_wandb_mode`
sets ``WANDB_MODE`` before the logger exists). :func:`run` is what the commands call;
:func:`fit` trains in-process from a config mapping (the learning curve and the demo). A bad
config (unknown key, wrong type) raises :class:`~envs.errors.UserError`, a NaN/inf loss
:class:`~driving.train.callbacks.NonFiniteLossError`.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from typing import Any

from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from agents.checkpoint import check_checkpoint_file
from driving.train.callbacks import CollapseGuard, NanGuard, PredictionWriter
from driving.train.checkpoint_io import AtomicCheckpointIO
from driving.train.datamodule import DemoDataModule
from driving.train.module import BehaviourCloning
from driving.wandb_setup import default_wandb_mode
from envs.errors import UserError

SUBCOMMANDS = ("fit", "validate", "test", "predict")
CKPT_PATH_NAMES = ("last", "best", "hpc", "registry")
"""``--ckpt_path`` values that Lightning resolves itself (not files; ``registry:...`` too)."""


class DrivingCLI(LightningCLI):
    """LightningCLI with the data -> model spec link, the prediction writer and checkpoints
    written then renamed (:class:`~driving.train.checkpoint_io.AtomicCheckpointIO`)."""

    def add_arguments_to_parser(self, parser: ArgumentParser) -> None:
        parser.link_arguments("data.policy_spec", "model.spec", apply_on="instantiate")
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def _parse_ckpt_path(self) -> None:
        """Lightning reads ``--ckpt_path``'s hyper-parameters here, right after parsing: a file
        that is not a checkpoint (a typo, a truncated file) is refused first, in one line."""
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path is not None and str(path).partition(":")[0] not in CKPT_PATH_NAMES:
            check_checkpoint_file(path)
        super()._parse_ckpt_path()

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not a user's own plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def _one_line(message: str) -> str:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return " ".join(lines)[:600]


def run(subcommand: str, argv: Sequence[str] | dict[str, Any]) -> None:
    """Run one LightningCLI subcommand (``fit``, ``validate``, ``test`` or ``predict``) with
    the command-line arguments ``argv`` (or a config mapping, as a YAML file would hold it).

    Raises:
        UserError: a bad config or flag (unknown key, wrong type, unreadable file).
        NonFiniteLossError: training met a NaN or infinite loss.
    """
    if subcommand not in SUBCOMMANDS:
        raise ValueError(f"unknown LightningCLI subcommand {subcommand!r}")
    default_wandb_mode()
    # Our own argv is handed over: LightningCLI's warning about args + sys.argv is moot.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    args: list[str] | dict[str, Any] = (
        {"subcommand": subcommand, subcommand: dict(argv)}
        if isinstance(argv, dict)
        else [subcommand, *argv]
    )
    try:
        DrivingCLI(
            BehaviourCloning,
            DemoDataModule,
            args=args,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [NanGuard(), CollapseGuard()]},
            parser_kwargs={"exit_on_error": False},
            auto_configure_optimizers=False,
            run=True,
        )
    except argparse.ArgumentError as exc:  # jsonargparse's, with exit_on_error=False
        raise UserError(_one_line(str(exc))) from None


def fit(config: dict[str, Any]) -> None:
    """Train in-process from ``config`` (the mapping a ``--config`` YAML file holds)."""
    run("fit", config)
