"""``driving bench collect``: how fast demonstrations are collected, and what a dataset costs.

1. frames/s with 1 and with 2 workers (``--counts``) on the same seeds, side by side, with the
   speed-ups;
2. the wall time and size on disk of a dataset of ``--frames`` frames (collected with
   ``--workers``), the time to open it, to read all its frames and to verify it (extrapolated,
   and printed as such, to 50,000 frames when ``--frames`` is smaller).

The datasets are temporary (under ``--dir``), except the measured one with ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from driving.benchmark import REFERENCE_FRAMES, CollectBench, run_collect_bench
from driving.commands._args import (
    ArgumentParser,
    add_fast_argument,
    add_override_arguments,
    add_worker_counts_argument,
    non_negative_float,
    positive_int,
    write_json,
)
from driving.configs import load_overrides
from envs.scenarios import SCENARIOS


def main(argv: Sequence[str] | None = None) -> int:
    """``driving bench collect``: returns the exit status."""
    parser = ArgumentParser(
        prog="driving bench collect",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--agent", default="modular-oracle", help="agent spec (modular-oracle)")
    parser.add_argument("--scenario", default="highway", choices=sorted(SCENARIOS))
    add_override_arguments(parser)
    parser.add_argument(
        "--episodes", type=positive_int, default=4, help="episodes per worker count (default 4)"
    )
    parser.add_argument(
        "--frames",
        type=positive_int,
        default=REFERENCE_FRAMES,
        help=f"frames of the dataset whose time and size are measured ({REFERENCE_FRAMES})",
    )
    add_worker_counts_argument(parser)
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="workers for the dataset (default 2)"
    )
    add_fast_argument(parser)
    parser.add_argument("--dir", type=Path, help="where the temporary datasets go")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the measured dataset: move it to this new folder (e.g. to train on it)",
    )
    parser.add_argument(
        "--noise-steer",
        type=non_negative_float,
        default=0.0,
        help="DART steering noise for the measured dataset (as `driving collect`)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    bench = CollectBench(
        agent=args.agent,
        scenario=args.scenario,
        overrides=load_overrides(args.overrides, args.overrides_file),
        episodes=args.episodes,
        frames=args.frames,
        workers=args.workers,
        fast=args.fast,
        dir=args.dir,
        keep=args.keep,
        noise_steer=args.noise_steer,
        counts=tuple(args.counts),
    )
    write_json(args.json, run_collect_bench(bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
