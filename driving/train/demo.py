"""The README's first command, the whole study on a small budget (``driving demo``).

1. collect expert demonstrations with modular-oracle on ``highway`` training seeds, with DART
   steering noise so the data holds recoveries (:func:`driving.collection.run_collection`, as
   ``driving collect``; resumed if present);
2. train the CNN with the small CPU config (:func:`driving.train.cli.run`, as ``driving fit
   --config experiments/bc_cpu_small.yaml``; skipped when its checkpoint is newer than the
   dataset and the config);
3. evaluate the CNN, modular-oracle, modular-vision and the baselines on the same held-out
   seeds (:func:`driving.comparison.run_compare`, as ``driving compare``), print the comparison
   table and write ``report.md``.

Every step is the same code path as the command named beside it; its wall time on 2 CPU cores
is in the README.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.registry import AgentSpec
from driving.collection import CollectRequest, run_collection
from driving.comparison import AgentEntry, CompareConfig, run_compare
from driving.dataset import MANIFEST
from driving.files import atomic_append_text
from driving.train.cli import run

TRAIN_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "bc_cpu_small.yaml"
"""The LightningCLI config the demo trains with; its data root and checkpoint are below
(relative to the working directory, as in the config)."""
DATA = Path("runs/data/highway")
CHECKPOINT = Path("runs/bc_cpu_small/checkpoints/best.ckpt")
AGENTS = ("modular-oracle", "modular-vision", "idm", "keep-lane")


@dataclass
class DemoConfig:
    """What ``driving demo`` runs.

    Attributes:
        train_episodes: expert episodes to collect.
        episodes: held-out episodes per agent.
        workers: parallel environments.
        epochs: training epochs.
        noise_steer: DART steering noise while collecting (normalised units).
        overrides: highway overrides for collection and evaluation (for quick trials).
        out: the report folder.
    """

    train_episodes: int = 120
    episodes: int = 30
    workers: int = 2
    epochs: int = 4
    noise_steer: float = 0.02
    overrides: dict[str, Any] = field(default_factory=dict)
    out: Path = Path("runs/demo")


def _collect(config: DemoConfig) -> None:
    if (DATA / MANIFEST).exists():
        request = CollectRequest(out=DATA, resume=True, workers=config.workers)
    else:
        request = CollectRequest(
            out=DATA,
            scenario="highway",
            agent="modular-oracle",
            episodes=config.train_episodes,
            workers=config.workers,
            noise_steer=config.noise_steer,
            overrides=config.overrides,
        )
    result = run_collection(request)
    if result.episodes == 0:
        print(f"demo: {DATA}: all {result.total_episodes} episodes already collected")
    else:
        print(
            f"demo: collected {result.episodes} episodes ({result.frames} frames); dataset "
            f"{DATA}: {result.total_episodes} episodes, {result.total_frames} frames"
        )


def _train(epochs: int) -> None:
    inputs = (DATA / MANIFEST, TRAIN_CONFIG)
    if CHECKPOINT.exists() and all(CHECKPOINT.stat().st_mtime > p.stat().st_mtime for p in inputs):
        print(f"demo: {CHECKPOINT} is newer than the dataset and the config; not training again")
        return
    flags = ["--data.root", str(DATA), "--trainer.max_epochs", str(epochs)]
    run("fit", ["--config", str(TRAIN_CONFIG), *flags])


def run_demo(config: DemoConfig, command: str) -> Path:
    """Collect, train, compare; return the report path (its last line holds the wall time)."""
    started = time.perf_counter()
    steps = {}
    _collect(config)
    steps["collect"] = time.perf_counter() - started
    _train(config.epochs)
    steps["train"] = time.perf_counter() - started - steps["collect"]
    compare = CompareConfig(
        agents=[AgentEntry(AgentSpec("cnn", str(CHECKPOINT)))]
        + [AgentEntry(AgentSpec(name)) for name in AGENTS],
        scenario="highway",
        overrides=config.overrides,
        episodes=config.episodes,
        workers=config.workers,
        out=str(config.out),
        wandb=False,
        title="Demo: end-to-end CNN vs modular pipeline on highway",
    )
    report = run_compare(compare, command)
    total = time.perf_counter() - started
    steps["evaluate"] = total - steps["collect"] - steps["train"]
    timing = ", ".join(f"{k} {v / 60:.1f} min" for k, v in steps.items())
    atomic_append_text(report, f"\nDemo wall time: {total / 60:.1f} min ({timing}).\n")
    print(f"demo done in {total / 60:.1f} min ({timing}); report: {report}")
    return report
