"""``driving data``: inspect a demonstration dataset.

- ``driving data verify DIR``: recompute every shard's checksums and check the counts; prints
  each problem naming its shard file and exits 1 if there is any, 0 if the dataset is intact.
- ``driving data info DIR``: scenario, agent and expert, noise, seeds, episodes, frames, size
  on disk and statistics of the expert labels and executed actions.
- ``driving data convert SRC DST``: write a verified copy of dataset SRC in the current format
  (version 2: each image stored once) to DST (absent or an empty folder); SRC is only read.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from driving.commands._args import ArgumentParser
from driving.dataset import convert_dataset, describe_dataset, verify_report


def build_parser() -> ArgumentParser:
    """The ``driving data`` argument parser."""
    parser = ArgumentParser(prog="driving data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True, metavar="{info,verify,convert}")
    for name, help_ in (
        ("info", "summary: scenario, agent, episodes, frames, size, action statistics"),
        ("verify", "check counts and checksums; exit 1 naming any bad shard"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("dir", type=Path, help="dataset folder")
    help_ = "write a verified copy in the current format (each image stored once) to DST"
    p = sub.add_parser("convert", help=help_, description=help_)
    p.add_argument("src", type=Path, help="dataset folder to convert (only read)")
    p.add_argument("dst", type=Path, help="new dataset folder (absent or empty)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving data``: returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.action == "info":
        print(describe_dataset(args.dir))
        return 0
    if args.action == "convert":
        print(convert_dataset(args.src, args.dst))
        return 0
    ok, text = verify_report(args.dir)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
