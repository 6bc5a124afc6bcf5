"""``driving bench sim``: stock and accelerated simulation side by side, with the speed-up.

Both sides run in one process, alternating round by round so that both see the same machine
load (see :mod:`driving.benchmark`); scenarios the fast path does not cover are marked
``stock fallback``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from driving.benchmark import run_sim_bench
from driving.commands._args import ArgumentParser, positive_int, write_json
from envs.scenarios import SCENARIOS


def main(argv: Sequence[str] | None = None) -> int:
    """``driving bench sim``: returns the exit status."""
    parser = ArgumentParser(prog="driving bench sim", description=__doc__)
    parser.add_argument(
        "--steps", type=positive_int, default=150, help="decisions per scenario and side"
    )
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=sorted(SCENARIOS),
        default=list(SCENARIOS),
        help="scenarios to compare (default: all; uncovered ones are marked stock fallback)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    write_json(args.json, run_sim_bench(args.scenarios, args.steps, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
