"""``driving fit|validate|test|predict``: the Lightning CLI over behaviour cloning.

Exactly as any LightningCLI project::

    driving fit --config experiments/bc_cpu_small.yaml
    driving fit --config experiments/bc_cpu_small.yaml --trainer.max_epochs 2 --data.root DIR
    driving fit --config experiments/bc_cpu_small.yaml --print_config > my.yaml   # reproduces
    driving fit --config my.yaml --ckpt_path runs/bc_cpu_small/checkpoints/last.ckpt  # resume
    driving validate --config my.yaml --ckpt_path runs/bc_cpu_small/checkpoints/best.ckpt
    driving predict --config my.yaml --ckpt_path BEST --predictions.path preds.npz

Every model, data and trainer option is settable from YAML or flags (:mod:`driving.train.cli`).
"""

from __future__ import annotations

from collections.abc import Sequence

from driving.train.cli import run


def fit(argv: Sequence[str]) -> int:
    """``driving fit``: train a CNN policy."""
    run("fit", argv)
    return 0


def validate(argv: Sequence[str]) -> int:
    """``driving validate``: the validation metrics of a checkpoint."""
    run("validate", argv)
    return 0


def test(argv: Sequence[str]) -> int:
    """``driving test``: the test metrics of a checkpoint."""
    run("test", argv)
    return 0


def predict(argv: Sequence[str]) -> int:
    """``driving predict``: a checkpoint's actions for a dataset's frames."""
    run("predict", argv)
    return 0
