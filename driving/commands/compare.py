"""``driving compare``: every agent on the same held-out seeds, plus distribution shifts.

Reads a YAML config (see ``experiments/compare_highway.yaml`` and :mod:`driving.comparison`)
and writes ``report.md`` (tables with 95% intervals, cost columns, plots), one evaluation
folder per agent and variant, and ``results.json``. Command-line flags override the config.
An agent whose evaluation folder holds the same agent, checkpoint, scenario, seeds and code is
not driven again.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from driving.commands._args import ArgumentParser, add_recipe_arguments, apply_flags, command_line
from driving.comparison import __doc__ as RECIPE
from driving.comparison import load_config, parse_agents, run_compare


def build_parser() -> ArgumentParser:
    """The ``driving compare`` argument parser."""
    parser = ArgumentParser(
        prog="driving compare",
        description=f"{__doc__}\n{RECIPE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe_arguments(
        parser, "drive every agent again, even where a matching evaluation is stored"
    )
    parser.add_argument("--agents", help="override agents: comma-separated specs")
    parser.add_argument("--no-wandb", action="store_true", help="do not log to W&B")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving compare``: returns the exit status."""
    args = build_parser().parse_args(argv)
    config = load_config(args.config)
    apply_flags(config, args, ("episodes", "workers", "out", "fresh"))
    if args.agents:
        specs = [a.strip() for a in args.agents.split(",") if a.strip()]
        config.agents = parse_agents(specs, "--agents")
    if args.no_wandb:
        config.wandb = False
    run_compare(config, command_line("compare", argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
