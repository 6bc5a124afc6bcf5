"""``driving suite``: each scenario's CNN against modular-vision, clean and under sensor
nuisances (train or reuse the CNNs, evaluate, write the summary), resumable.

Reads a YAML recipe (see ``experiments/compare_suite.yaml`` and :mod:`driving.train.suite`).
Command-line flags override the recipe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from driving.commands._args import ArgumentParser, add_recipe_arguments, apply_flags, command_line
from driving.train.suite import __doc__ as RECIPE
from driving.train.suite import load_suite_config, run_suite


def build_parser() -> ArgumentParser:
    """The ``driving suite`` argument parser."""
    parser = ArgumentParser(
        prog="driving suite",
        description=f"{__doc__}\n{RECIPE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(
        parser, "drive every agent again, even where a matching evaluation is stored"
    )
    parser.add_argument(
        "--scenarios", nargs="+", metavar="NAME", help="override the recipe's scenarios"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving suite``: returns the exit status."""
    args = build_parser().parse_args(argv)
    config = load_suite_config(args.config, scenarios=args.scenarios)
    apply_flags(config, args, ("episodes", "workers", "out", "fresh"))
    run_suite(config, command_line("suite", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
