"""``driving bench collect``: how fast demonstrations are collected, and what a dataset costs.

Two measurements, both through the real collection path (:func:`driving.collect.collect`:
rollout, labelling, shard writing with checksums):

1. frames/s with 1 and with 2 workers on the same seeds, side by side, with the speed-up;
2. the wall time and size on disk of a dataset of ``--frames`` frames (collected with
   ``--workers``), the time to open it and to read all its frames, and the time ``data verify``
   takes. When ``--frames`` is below 50,000, the figures are also extrapolated linearly to
   50,000 frames and printed as an extrapolation, not a measurement.

The datasets are written to a temporary folder (under ``--dir``) and removed afterwards, except
the measured one when ``--keep DIR`` asks to keep it (``--noise-steer`` then collects it with
DART noise, as ``driving collect`` would, so it can be trained on).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.registry import make_agent
from driving.argparse_util import ArgumentParser, json_object, load_overrides, positive_int
from driving.collect import DartNoise, collect
from driving.data_cli import size_on_disk
from driving.dataset import DatasetWriter, DemoDataset, check_new_root, verify_dataset
from envs.scenarios import SCENARIOS, Scenario, get_scenario

REFERENCE_FRAMES = 50_000
"""The dataset size the extrapolation is given for."""


def timed_collection(
    scenario: Scenario,
    agent_spec: str,
    seeds: list[int],
    workers: int,
    root: Path,
    fast: bool | None = None,
    noise: DartNoise | None = None,
) -> dict[str, Any]:
    """Collect ``seeds`` into a new dataset at ``root`` (with DART ``noise`` on the executed
    action if given); return frames, seconds and frames/s."""
    agent = make_agent(agent_spec, scenario)
    extra = {"collect": {"agent": agent_spec, "noise": noise.to_dict() if noise else None}}
    writer = DatasetWriter.create(root, scenario, {"agent": agent_spec}, seeds, extra)
    started = time.perf_counter()
    try:
        episodes, frames = collect(writer, agent, mixer=noise, workers=workers, fast=fast)
    finally:
        agent.close()
    seconds = time.perf_counter() - started
    return {
        "workers": workers,
        "episodes": episodes,
        "frames": frames,
        "seconds": seconds,
        "frames_per_s": frames / seconds,
    }


def dataset_costs(root: Path) -> dict[str, float]:
    """Size on disk and the times to open, read all frames and verify the dataset at ``root``."""
    started = time.perf_counter()
    data = DemoDataset(root)
    opened = time.perf_counter()
    data.frames.sum(dtype="uint64")  # touch every byte
    read = time.perf_counter()
    problems = verify_dataset(root)
    verified = time.perf_counter()
    if problems:
        raise RuntimeError(f"benchmark dataset failed verification: {problems}")
    return {
        "bytes": size_on_disk(root),
        "open_s": opened - started,
        "read_frames_s": read - opened,
        "verify_s": verified - read,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``driving bench collect``: returns the exit status."""
    parser = ArgumentParser(prog="driving bench collect", description=__doc__)
    parser.add_argument("--agent", default="modular-oracle", help="agent spec (modular-oracle)")
    parser.add_argument("--scenario", default="highway", choices=sorted(SCENARIOS))
    parser.add_argument("--overrides", type=json_object, help="config overrides as JSON")
    parser.add_argument("--overrides-file", help="YAML/JSON file of overrides")
    parser.add_argument(
        "--episodes", type=positive_int, default=4, help="episodes per worker count (default 4)"
    )
    parser.add_argument(
        "--frames",
        type=positive_int,
        default=REFERENCE_FRAMES,
        help=f"frames of the dataset whose time and size are measured ({REFERENCE_FRAMES})",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="workers for the dataset (default 2)"
    )
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use the accelerated simulation (default: the project default)",
    )
    parser.add_argument("--dir", type=Path, help="where the temporary datasets go")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the measured dataset: move it to this new folder (e.g. to train on it)",
    )
    parser.add_argument(
        "--noise-steer",
        type=float,
        default=0.0,
        help="DART steering noise for the measured dataset (as `driving collect`)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.keep is not None:
        check_new_root(args.keep)
    scenario = get_scenario(args.scenario).with_overrides(
        load_overrides(args.overrides, args.overrides_file)
    )
    seeds = scenario.train_seeds.first(args.episodes)
    print(
        f"bench collect: {args.agent} on {scenario.name} {scenario.overrides or ''}; "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} (other work "
        "on the machine slows both rows and hides the speed-up)",
        flush=True,
    )
    results: dict[str, Any] = {
        "agent": args.agent,
        "scenario": scenario.to_dict(),
        "fast": args.fast,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    if args.keep is not None and args.dir is None:  # same filesystem: keeping is a rename
        args.keep.parent.mkdir(parents=True, exist_ok=True)
        args.dir = args.keep.parent
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-collect-") as tmp:
        tmp_path = Path(tmp)
        print(f"{'workers':>8}{'episodes':>10}{'frames':>8}{'seconds':>9}{'frames/s':>10}")
        rates = []
        for workers in (1, 2):
            r = timed_collection(
                scenario, args.agent, seeds, workers, tmp_path / f"w{workers}", args.fast
            )
            rates.append(r)
            print(
                f"{workers:>8}{r['episodes']:>10}{r['frames']:>8}{r['seconds']:>9.1f}"
                f"{r['frames_per_s']:>10.1f}",
                flush=True,
            )
        speedup = rates[1]["frames_per_s"] / rates[0]["frames_per_s"]
        print(f"speed-up with 2 workers: x{speedup:.2f}")
        results["workers"] = rates
        per_episode = rates[0]["frames"] / rates[0]["episodes"]
        n_episodes = math.ceil(args.frames / per_episode)
        if n_episodes > len(scenario.train_seeds):
            parser.error(f"--frames {args.frames} needs more episodes than the training seeds")
        root = tmp_path / "dataset"
        print(
            f"dataset of ~{args.frames} frames: {n_episodes} episodes "
            f"({per_episode:.0f} frames each) with {args.workers} workers...",
            flush=True,
        )
        made = timed_collection(
            scenario,
            args.agent,
            scenario.train_seeds.first(n_episodes),
            args.workers,
            root,
            args.fast,
            DartNoise.from_settings(scenario.action, args.noise_steer, 0.0),
        )
        costs = dataset_costs(root)
        if args.keep is not None:
            shutil.move(root, args.keep)
            print(f"kept the dataset in {args.keep}")
    frames = made["frames"]
    print(
        f"measured: {frames} frames in {made['seconds']:.1f} s ({made['frames_per_s']:.1f} "
        f"frames/s), {costs['bytes'] / 2**20:.1f} MiB on disk "
        f"({costs['bytes'] / frames / 1024:.1f} KiB/frame); open {costs['open_s']:.2f} s, "
        f"read all frames {costs['read_frames_s']:.2f} s, verify {costs['verify_s']:.2f} s"
    )
    results["dataset"] = {**made, **costs}
    if frames < REFERENCE_FRAMES:
        scale = REFERENCE_FRAMES / frames
        extrapolated = {
            "frames": REFERENCE_FRAMES,
            "seconds": made["seconds"] * scale,
            "bytes": costs["bytes"] * scale,
            "read_frames_s": costs["read_frames_s"] * scale,
            "verify_s": costs["verify_s"] * scale,
        }
        results["extrapolated"] = extrapolated
        print(
            f"EXTRAPOLATED (linear from {frames} frames, not measured) to {REFERENCE_FRAMES} "
            f"frames: collection {extrapolated['seconds'] / 60:.1f} min with {args.workers} "
            f"workers, {extrapolated['bytes'] / 2**30:.2f} GiB on disk, read all frames "
            f"{extrapolated['read_frames_s']:.1f} s, verify {extrapolated['verify_s']:.1f} s"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
