"""``driving saliency``: where a CNN policy looks, on the episodes it fails and on the others.

The checkpoint drives held-out episodes; its VisualBackProp saliency is split over the frame's
other vehicles, ego car, lane markings and background, per outcome (completed, collided, left
the road), over the last seconds before each failure; the failures' last frames are drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from driving.commands._args import ArgumentParser, add_override_arguments, positive_int
from driving.configs import load_overrides
from driving.saliency import SaliencyRequest, run_saliency
from envs.scenarios import SCENARIOS


def build_parser() -> ArgumentParser:
    """The ``driving saliency`` argument parser."""
    parser = ArgumentParser(
        prog="driving saliency",
        description="Drive a CNN checkpoint on held-out seeds and measure which pixels its "
        "saliency falls on (other vehicles, ego car, lane markings, background), in the last "
        "seconds before each failure and in completed episodes; write report.md, saliency.json "
        "and a picture of each failure's last frame.",
    )
    parser.add_argument("checkpoint", help="CNN policy checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--scenario", default="highway", help=f"scenario name ({', '.join(SCENARIOS)})"
    )
    parser.add_argument(
        "--episodes", type=positive_int, default=100, help="number of episodes (default 100)"
    )
    parser.add_argument(
        "--seeds", help="seed range A:B (half-open); default: the held-out evaluation range"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=2.0,
        help="seconds before a failure whose frames count (default 2)",
    )
    parser.add_argument(
        "--images", type=int, default=6, help="failures to draw, first by seed (default 6)"
    )
    add_override_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving saliency``: returns the exit status."""
    args = build_parser().parse_args(argv)
    print(
        run_saliency(
            SaliencyRequest(
                checkpoint=args.checkpoint,
                out=args.out,
                scenario=args.scenario,
                overrides=load_overrides(args.overrides, args.overrides_file),
                episodes=args.episodes,
                seeds=args.seeds,
                window_s=args.window,
                images=args.images,
                progress=not args.quiet,
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
