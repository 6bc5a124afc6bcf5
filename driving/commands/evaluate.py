"""``driving evaluate``: drive an agent on held-out seeds; write episodes.csv and summary.json.

Drives the agent on held-out seeds (the scenario's evaluation range unless ``--seeds`` says
otherwise), writes ``episodes.csv`` (one row per episode) and ``summary.json`` (every metric
with its mean, 95% interval and episode count, plus agent, scenario, overrides, seeds and
versions), and prints the aggregate table. Rows are kept as episodes finish: an interrupted
evaluation is resumed by the same command; ``--overwrite`` replaces another evaluation.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from driving.commands._args import (
    ArgumentParser,
    add_episode_arguments,
    add_fast_argument,
    add_override_arguments,
)
from driving.configs import load_overrides
from driving.evaluation import EvaluationRequest, run_evaluation


def build_parser() -> ArgumentParser:
    """The ``driving evaluate`` argument parser."""
    parser = ArgumentParser(
        prog="driving evaluate",
        description="Drive an agent on held-out seeds and report closed-loop metrics with 95% "
        "confidence intervals (Wilson for rates, Student t for means).",
    )
    parser.add_argument(
        "--agent",
        required=True,
        help="agent spec: random, keep-lane, idm, modular-oracle, modular-vision, cnn:PATH",
    )
    add_episode_arguments(
        parser, "seed range A:B (half-open); default: the scenario's held-out evaluation range"
    )
    add_override_arguments(parser)
    add_fast_argument(parser)
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an --out folder that holds another evaluation (the same evaluation, "
        "interrupted, is resumed without it)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving evaluate``: returns the exit status."""
    args = build_parser().parse_args(argv)
    request = EvaluationRequest(
        agent=args.agent,
        scenario=args.scenario,
        overrides=load_overrides(args.overrides, args.overrides_file),
        episodes=args.episodes,
        seeds=args.seeds,
        workers=args.workers,
        fast=args.fast,
        out=args.out,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    return run_evaluation(request)


if __name__ == "__main__":
    sys.exit(main())
