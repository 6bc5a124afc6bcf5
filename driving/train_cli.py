"""``driving fit|validate|test|predict``: the Lightning CLI over behaviour cloning.

Exactly as any LightningCLI project::

    driving fit --config experiments/bc_cpu_small.yaml
    driving fit --config experiments/bc_cpu_small.yaml --trainer.max_epochs 2 --data.root DIR
    driving fit --config experiments/bc_cpu_small.yaml --print_config > my.yaml   # reproduces
    driving fit --config my.yaml --ckpt_path runs/bc_cpu_small/checkpoints/last.ckpt  # resume
    driving validate --config my.yaml --ckpt_path runs/bc_cpu_small/checkpoints/best.ckpt
    driving predict --config my.yaml --ckpt_path BEST --predictions.path preds.npz

The model is :class:`driving.bc_module.BehaviourCloning`, the data
:class:`driving.datamodule.DemoDataModule`; the data's ``policy_spec`` (scenario, observation and
action specs, data counts) is linked into the model when both are built, so a config never
repeats it. Every model, data and trainer option is settable from YAML or flags.

W&B runs are offline unless the user is logged in (:func:`driving.wandb_setup.default_wandb_mode`
sets ``WANDB_MODE`` before the logger exists). A bad config (unknown key, wrong type) is one line
on stderr with exit status 2; a NaN/inf loss stops training with one line and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.io import TorchCheckpointIO

from driving.bc_module import BehaviourCloning
from driving.callbacks import NanGuard, NonFiniteLossError, PredictionWriter
from driving.checkpoint_io import AtomicCheckpointIO
from driving.datamodule import DemoDataModule
from driving.wandb_setup import default_wandb_mode


class DrivingCLI(LightningCLI):
    """LightningCLI with the data -> model spec link, the prediction writer and checkpoints
    written then renamed (:class:`~driving.checkpoint_io.AtomicCheckpointIO`)."""

    def add_arguments_to_parser(self, parser: ArgumentParser) -> None:
        parser.link_arguments("data.policy_spec", "model.spec", apply_on="instantiate")
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not a user's own plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer


def _one_line(message: str) -> str:
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return " ".join(lines)[:600]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one LightningCLI subcommand (``argv[0]`` in fit/validate/test/predict)."""
    args = list(sys.argv[1:] if argv is None else argv)
    default_wandb_mode()
    # driving.cli hands us its own argv: LightningCLI's warning about args + sys.argv is moot.
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    command = args[0] if args else ""
    try:
        DrivingCLI(
            BehaviourCloning,
            DemoDataModule,
            args=args,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [NanGuard()]},
            parser_kwargs={"exit_on_error": False},
            auto_configure_optimizers=False,
            run=True,
        )
    except NonFiniteLossError as exc:
        print(f"driving {command}: error: {exc}", file=sys.stderr)
        return 1
    except argparse.ArgumentError as exc:  # jsonargparse's, with exit_on_error=False
        print(f"driving {command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    return 0
