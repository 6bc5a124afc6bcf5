"""``driving curve``: BC vs DAgger learning curves against expert labels (collect, train,
evaluate), resumable point by point.

Reads a YAML recipe (see ``experiments/curve_highway.yaml`` and :mod:`driving.train.curve`).
Command-line flags override the recipe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from driving.commands._args import (
    ArgumentParser,
    add_recipe_arguments,
    apply_flags,
    command_line,
    positive_float,
)
from driving.train.curve import SERIES, load_curve_config, run_curve
from driving.train.curve import __doc__ as RECIPE


def build_parser() -> ArgumentParser:
    """The ``driving curve`` argument parser."""
    parser = ArgumentParser(
        prog="driving curve",
        description=f"{__doc__}\n{RECIPE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(
        parser, "evaluate every checkpoint again instead of reusing a matching evaluation"
    )
    parser.add_argument(
        "--time-limit",
        type=positive_float,
        metavar="MINUTES",
        help="start no new point after MINUTES (the report covers the points built; the same "
        "command builds the rest)",
    )
    parser.add_argument(
        "--series",
        nargs="+",
        choices=SERIES,
        help="build and report only these series this run instead of the recipe's (so a "
        "time-limited run goes to the methods it needs first; DAgger starts from BC's smallest "
        "point either way; a later run with every series reuses all the points built)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving curve``: returns the exit status."""
    args = build_parser().parse_args(argv)
    config = load_curve_config(args.config)
    apply_flags(config, args, ("episodes", "workers", "out", "fresh", "time_limit"))
    if args.series is not None:
        config.series = [name for name in SERIES if name in args.series]
    run_curve(config, command_line("curve", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
