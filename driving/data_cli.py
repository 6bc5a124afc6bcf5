"""``driving data``: inspect a demonstration dataset.

- ``driving data verify DIR``: recompute every shard's checksums and check the counts; prints
  each problem naming its shard file and exits 1 if there is any, 0 if the dataset is intact.
- ``driving data info DIR``: scenario, agent and expert, noise, seeds, episodes, frames, size
  on disk and statistics of the expert labels and executed actions.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from driving.argparse_util import ArgumentParser
from driving.dataset import MANIFEST, DemoDataset, read_manifest, verify_dataset
from envs.errors import UserError


def size_on_disk(root: Path) -> int:
    """Bytes of every file under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def verify(root: Path) -> int:
    """``data verify``: print the problems (or a one-line OK); return the exit status."""
    if not (root / MANIFEST).is_file():
        raise UserError(f"{root} is not a dataset (no {MANIFEST})")
    problems = verify_dataset(root)
    if problems:
        for problem in problems:
            print(f"BAD {problem}")
        print(f"{root}: {len(problems)} problem(s)")
        return 1
    manifest = read_manifest(root)
    counts = manifest["counts"]
    requested = len(manifest["seeds"]["requested"])
    incomplete = (
        f"; INCOMPLETE: {requested - counts['episodes']} of {requested} episodes missing"
        if counts["episodes"] < requested
        else ""
    )
    print(
        f"{root}: OK ({len(manifest['shards'])} shards, {counts['episodes']} episodes, "
        f"{counts['frames']} frames; checksums match{incomplete})"
    )
    return 0


def _stats(name: str, values: np.ndarray) -> str:
    if len(values) == 0:
        return f"  {name:<22} (no frames)"
    return (
        f"  {name:<22} mean {values.mean():+.3f}  std {values.std():.3f}  "
        f"min {values.min():+.3f}  max {values.max():+.3f}"
    )


def info(root: Path) -> int:
    """``data info``: print the dataset summary; return the exit status."""
    data = DemoDataset(root)
    m: dict[str, Any] = data.manifest
    collect = m["extra"].get("collect") or {}
    noise = collect.get("noise")
    seeds = m["seeds"]
    prov = data.provenance()
    lines = [
        f"dataset      {root}",
        f"scenario     {data.scenario.name}  overrides {data.scenario.overrides or '{}'}",
        f"observation  {m['observation']['kind']} {m['observation']['shape']} uint8",
        f"actions      {m['action']['names']} (normalised [-1, 1])",
        f"agent        {m['agent'].get('agent')}   expert {m['agent'].get('expert')}",
        f"noise        {noise['std'] if noise else 'none'}",
        f"episodes     {m['counts']['episodes']} of {len(seeds['requested'])} requested"
        + ("" if data.complete else "  (INCOMPLETE: driving collect --resume)"),
        f"frames       {m['counts']['frames']}"
        + (f"  ({len(data) / max(len(prov), 1):.1f} per episode)" if prov else ""),
        f"ended        {sum(p['terminated'] for p in prov)} terminated (crash / off-road), "
        f"{sum(p['truncated'] for p in prov)} reached the time limit",
        f"shards       {len(m['shards'])}",
        f"size         {size_on_disk(root) / 2**20:.1f} MiB on disk",
        f"created      {m['created']}  (updated {m['updated']})",
        f"versions     {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        "action statistics:",
    ]
    for k, name in enumerate(m["action"]["names"]):
        lines.append(_stats(f"expert {name}", data.expert_actions[:, k]))
        lines.append(_stats(f"executed {name}", data.actions[:, k]))
    lines.append(_stats("speed [m/s]", data.speed))
    print("\n".join(lines))
    return 0


def build_parser() -> ArgumentParser:
    """The ``driving data`` argument parser."""
    parser = ArgumentParser(prog="driving data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True, metavar="{info,verify}")
    for name, help_ in (
        ("info", "summary: scenario, agent, episodes, frames, size, action statistics"),
        ("verify", "check counts and checksums; exit 1 naming any bad shard"),
    ):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("dir", type=Path, help="dataset folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving data``: returns the exit status."""
    args = build_parser().parse_args(argv)
    return verify(args.dir) if args.action == "verify" else info(args.dir)


if __name__ == "__main__":
    sys.exit(main())
