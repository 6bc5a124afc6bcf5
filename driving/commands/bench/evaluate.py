"""``driving bench evaluate``: how fast a network agent drives closed loop.

The agent (``--agent cnn:PATH``, or by default an untrained network of the default
architecture: inference costs the same whatever the weights) drives the same held-out seeds
with each worker count of ``--counts``; above one worker twice, pipelined (one group of
environments steps while the network decides for the other) and in lockstep. Prints frames/s
and the speed-up over the first row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from driving.commands._args import (
    ArgumentParser,
    add_fast_argument,
    add_override_arguments,
    add_worker_counts_argument,
    positive_int,
    write_json,
)
from driving.configs import load_overrides
from driving.evaluation_benchmark import EvaluateBench, run_evaluate_bench
from envs.scenarios import SCENARIOS


def main(argv: Sequence[str] | None = None) -> int:
    """``driving bench evaluate``: returns the exit status."""
    parser = ArgumentParser(
        prog="driving bench evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--agent", help="network agent spec cnn:PATH (default: untrained)")
    parser.add_argument("--scenario", default="highway", choices=sorted(SCENARIOS))
    add_override_arguments(parser)
    parser.add_argument(
        "--episodes", type=positive_int, default=4, help="held-out episodes per row (default 4)"
    )
    add_worker_counts_argument(parser)
    add_fast_argument(parser)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    bench = EvaluateBench(
        agent=args.agent,
        scenario=args.scenario,
        overrides=load_overrides(args.overrides, args.overrides_file),
        episodes=args.episodes,
        counts=tuple(args.counts),
        fast=args.fast,
    )
    write_json(args.json, run_evaluate_bench(bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
