"""``driving collect``: record expert demonstrations into a dataset folder.

Episodes run in parallel with ``--workers``; every ``--shard-episodes`` finished episodes are
written as one shard. The expert (by default the acting agent itself) labels every frame with
its clean action; DART noise (``--noise-steer``, ``--noise-accel``) perturbs only the executed
action. Training seeds only. ``--resume`` collects the seeds still missing after an
interruption, with the recorded settings.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from driving.collection import CollectRequest, run_collection
from driving.commands._args import (
    ArgumentParser,
    add_fast_argument,
    add_override_arguments,
    non_negative_float,
    positive_int,
)
from driving.configs import load_overrides
from envs.scenarios import SCENARIOS


def build_parser() -> ArgumentParser:
    """The ``driving collect`` argument parser."""
    parser = ArgumentParser(
        prog="driving collect",
        description="Record demonstrations (frames + the expert's clean action labels) into a "
        "dataset folder, in parallel, optionally with DART noise on the executed action. "
        "Settings left out on --resume are taken from the dataset.",
    )
    parser.add_argument("--scenario", help=f"scenario name ({', '.join(SCENARIOS)}; highway)")
    parser.add_argument(
        "--agent", help="acting agent spec, e.g. modular-oracle, idm, cnn:PATH (required)"
    )
    parser.add_argument("--expert", help="labelling agent spec (default: the acting agent)")
    parser.add_argument("--episodes", type=positive_int, help="number of episodes")
    parser.add_argument(
        "--seeds", help="training seed range A:B (half-open); default: the scenario's train range"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="parallel environments (subprocesses)"
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset folder")
    add_override_arguments(parser)
    parser.add_argument(
        "--noise-steer",
        type=non_negative_float,
        help="DART: std of Gaussian noise on the executed steering",
    )
    parser.add_argument(
        "--noise-accel",
        type=non_negative_float,
        help="DART: std of Gaussian noise on the executed accel",
    )
    parser.add_argument(
        "--shard-episodes", type=positive_int, default=8, help="episodes per shard (default 8)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="finish an interrupted collection in --out"
    )
    parser.add_argument(
        "--with-nuisance",
        action="store_true",
        help="allow a sensor nuisance in --overrides (refused otherwise: it would corrupt the "
        "training frames); recorded in the manifest with the overrides",
    )
    add_fast_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving collect``: returns the exit status."""
    args = build_parser().parse_args(argv)
    given_overrides = args.overrides is not None or args.overrides_file
    result = run_collection(
        CollectRequest(
            out=args.out,
            resume=args.resume,
            scenario=args.scenario,
            agent=args.agent,
            expert=args.expert,
            episodes=args.episodes,
            seeds=args.seeds,
            overrides=load_overrides(args.overrides, args.overrides_file)
            if given_overrides
            else None,
            noise_steer=args.noise_steer,
            noise_accel=args.noise_accel,
            workers=args.workers,
            shard_episodes=args.shard_episodes,
            fast=args.fast,
            progress=not args.quiet,
            with_nuisance=args.with_nuisance,
        )
    )
    if result.episodes == 0 and args.resume:
        print(f"{args.out}: all {result.total_episodes} episodes already collected")
        return 0
    rate = result.frames / max(result.seconds, 1e-9)
    print(
        f"wrote {result.episodes} episodes ({result.frames} frames, {rate:.0f} frames/s "
        f"with {args.workers} worker(s)) to {args.out}; dataset: {result.total_episodes} "
        f"episodes, {result.total_frames} frames"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
