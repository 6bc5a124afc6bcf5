"""``driving demo``: collect, train, evaluate both approaches, print the comparison.

The README's first command, the whole study on a small budget (:mod:`driving.train.demo`):
expert demonstrations with DART noise, the small CPU CNN, then the CNN, modular-oracle,
modular-vision and the baselines on the same held-out seeds. A second run reuses the dataset,
and the checkpoint unless the config changed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from driving.commands._args import (
    ArgumentParser,
    command_line,
    json_object,
    non_negative_float,
    positive_int,
)
from driving.train.demo import DemoConfig, run_demo


def build_parser() -> ArgumentParser:
    """The ``driving demo`` argument parser."""
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
        help="training epochs (4 on 24,000 frames: about 3,000 steps)",
    )
    parser.add_argument(
        "--noise-steer",
        type=non_negative_float,
        default=0.02,
        help="DART steering noise while collecting",
    )
    parser.add_argument(
        "--overrides",
        type=json_object,
        default={},
        help="highway overrides for collection and evaluation (JSON; for quick trials)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="report folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving demo``: returns the exit status."""
    args = build_parser().parse_args(argv)
    config = DemoConfig(
        train_episodes=args.train_episodes,
        episodes=args.episodes,
        workers=args.workers,
        epochs=args.epochs,
        noise_steer=args.noise_steer,
        overrides=args.overrides,
        out=args.out,
    )
    run_demo(config, command_line("demo", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
