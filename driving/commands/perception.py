"""``driving perception``: measure modular-vision's perception against the ground truth.

A driver (``modular-oracle`` by default) drives held-out episodes; at every decision the
OpenCV perception runs on the observation and its detections are matched with the ground-truth
vehicles: precision, recall, position and speed errors, lane-centre and heading errors.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from driving.commands._args import ArgumentParser, add_episode_arguments, add_override_arguments
from driving.configs import load_overrides
from driving.perception import AHEAD_RANGE_M, PerceptionRequest, run_perception


def build_parser() -> ArgumentParser:
    """The ``driving perception`` argument parser."""
    parser = ArgumentParser(
        prog="driving perception",
        description="Score modular-vision's OpenCV perception against the ground truth on "
        "held-out frames: detection precision/recall and position error, overall and for cars "
        f"within {AHEAD_RANGE_M:.0f} m ahead.",
    )
    add_episode_arguments(
        parser, "seed range A:B (half-open); default: the scenario's held-out evaluation range"
    )
    parser.add_argument(
        "--driver", default="modular-oracle", help="agent that drives while frames are scored"
    )
    parser.add_argument(
        "--gate", type=float, default=2.5, help="largest matching distance [m] (default 2.5)"
    )
    add_override_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving perception``: returns the exit status."""
    args = build_parser().parse_args(argv)
    report = run_perception(
        PerceptionRequest(
            scenario=args.scenario,
            overrides=load_overrides(args.overrides, args.overrides_file),
            episodes=args.episodes,
            seeds=args.seeds,
            driver=args.driver,
            workers=args.workers,
            gate=args.gate,
            progress=not args.quiet,
        )
    )
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
