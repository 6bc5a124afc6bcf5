"""``driving bench train``: training samples/s through Lightning beside a bare PyTorch loop.

The same network, data and optimiser in both loops, alternating runs, best of each (see
:mod:`driving.train.benchmark`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from driving.commands._args import ArgumentParser, positive_int, write_json
from driving.train.benchmark import TrainBench, run_train_bench


def build_parser() -> ArgumentParser:
    """The ``driving bench train`` argument parser."""
    parser = ArgumentParser(prog="driving bench train", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset folder (driving collect --out)")
    parser.add_argument("--kind", default="pilotnet", choices=["pilotnet", "resnet"])
    parser.add_argument("--width", type=float, default=0.5, help="channel multiplier")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument(
        "--speed-input",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the network reads the speedometer too (as in bc_cpu_small.yaml)",
    )
    parser.add_argument(
        "--brake-weight",
        type=float,
        default=5.0,
        help="braking frames drawn this many times as often (as in bc_cpu_small.yaml)",
    )
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=200,
        help="timed steps per loop (short loops measure the page cache)",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--repeats", type=positive_int, default=3, help="alternating runs each")
    parser.add_argument("--precision", default="32-true", help="e.g. bf16-mixed on a GPU")
    parser.add_argument("--no-epoch", action="store_true", help="skip the full-epoch timing")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving bench train``: returns the exit status."""
    args = build_parser().parse_args(argv)
    bench = TrainBench(
        data=args.data,
        kind=args.kind,
        width=args.width,
        speed_input=args.speed_input,
        batch_size=args.batch_size,
        brake_weight=args.brake_weight,
        workers=args.workers,
        steps=args.steps,
        warmup=args.warmup,
        repeats=args.repeats,
        precision=args.precision,
        epoch=not args.no_epoch,
    )
    write_json(args.json, run_train_bench(bench))
    return 0


if __name__ == "__main__":
    sys.exit(main())
