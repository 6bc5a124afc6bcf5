"""``driving demo``: the README's first command, the whole study on a small budget.

1. collect expert demonstrations with modular-oracle on ``highway`` training seeds, with DART
   steering noise so the data holds recoveries (``driving collect``, resumed if present);
2. train the CNN with the small CPU config (``driving fit --config
   experiments/bc_cpu_small.yaml``; skipped when its checkpoint is newer than the dataset and
   the config);
3. evaluate the CNN, modular-oracle, modular-vision and the baselines on the same held-out
   seeds (``driving compare``), print the comparison table and write ``report.md``.

Every step is the same code path as the command named beside it, and the whole run takes
about 6.5 minutes on 2 CPU cores after setup (collection and evaluation use the accelerated
simulation).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from driving.argparse_util import ArgumentParser, json_object, positive_int
from driving.compare import CompareConfig, run_compare
from envs.errors import UserError

TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "experiments" / "bc_cpu_small.yaml"
"""The LightningCLI config the demo trains with; its data root and checkpoint are below
(relative to the working directory, as in the config)."""
DATA = Path("runs/data/highway")
CHECKPOINT = Path("runs/bc_cpu_small/checkpoints/best.ckpt")
AGENTS = ("modular-oracle", "modular-vision", "idm", "keep-lane")


def _collect(episodes: int, workers: int, noise_steer: float, overrides: dict) -> None:
    from driving.collect import main as collect_main

    if (DATA / "manifest.json").exists():
        args = ["--out", str(DATA), "--resume", "--workers", str(workers)]
    else:
        args = [
            "--scenario", "highway", "--agent", "modular-oracle", "--episodes", str(episodes),
            "--workers", str(workers), "--noise-steer", str(noise_steer), "--out", str(DATA),
            "--overrides", json.dumps(overrides),
        ]  # fmt: skip
    status = collect_main(args)
    if status:
        raise UserError(f"collection failed (exit status {status}); rerun the demo to resume")


def _train(epochs: int) -> None:
    from driving.train_cli import main as train_main

    inputs = (DATA / "manifest.json", TRAIN_CONFIG)
    if CHECKPOINT.exists() and all(CHECKPOINT.stat().st_mtime > p.stat().st_mtime for p in inputs):
        print(f"demo: {CHECKPOINT} is newer than the dataset and the config; not training again")
        return
    args = ["fit", "--config", str(TRAIN_CONFIG), "--data.root", str(DATA)]
    args += ["--trainer.max_epochs", str(epochs)]
    status = train_main(args)
    if status:
        raise UserError(f"training failed (exit status {status})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="driving demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--train-episodes",
        type=positive_int,
        default=120,
        help="expert episodes to collect (120: about 24,000 frames)",
    )
    parser.add_argument(
        "--episodes", type=positive_int, default=30, help="held-out episodes per agent"
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel environments")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=4,
        help="training epochs (4 on 24,000 frames: about 3,000 steps, 3 min on 2 cores)",
    )
    parser.add_argument(
        "--noise-steer", type=float, default=0.02, help="DART steering noise while collecting"
    )
    parser.add_argument(
        "--overrides",
        type=json_object,
        default={},
        help="highway overrides for collection and evaluation (JSON; for quick trials)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="report folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    steps = {}
    _collect(args.train_episodes, args.workers, args.noise_steer, args.overrides)
    steps["collect"] = time.perf_counter() - started
    _train(args.epochs)
    steps["train"] = time.perf_counter() - started - steps["collect"]
    config = CompareConfig(
        agents=[f"cnn:{CHECKPOINT}", *AGENTS],
        scenario="highway",
        overrides=args.overrides,
        episodes=args.episodes,
        workers=args.workers,
        out=str(args.out),
        wandb=False,
        title="Demo: end-to-end CNN vs modular pipeline on highway",
    )
    command = "driving demo " + " ".join(argv if argv is not None else sys.argv[2:])
    report = run_compare(config, command.strip())
    total = time.perf_counter() - started
    steps["evaluate"] = total - steps["collect"] - steps["train"]
    timing = ", ".join(f"{k} {v / 60:.1f} min" for k, v in steps.items())
    with report.open("a") as fh:
        fh.write(f"\nDemo wall time: {total / 60:.1f} min ({timing}).\n")
    print(f"demo done in {total / 60:.1f} min ({timing}); report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
