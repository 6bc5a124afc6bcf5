"""``driving bench env``: how fast each scenario steps, in policy and simulated steps per second.

Drives the ``keep-lane`` agent (zero actions) through each scenario in one process, stock
simulation (see :mod:`driving.benchmark`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from driving.benchmark import run_env_bench
from driving.commands._args import ArgumentParser, positive_int, write_json
from envs.scenarios import SCENARIOS


def main(argv: Sequence[str] | None = None) -> int:
    """``driving bench env``: returns the exit status."""
    parser = ArgumentParser(prog="driving bench env", description=__doc__)
    parser.add_argument("--steps", type=positive_int, default=100, help="decisions per scenario")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    results = run_env_bench(args.scenario or list(SCENARIOS), args.steps, args.seed)
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
