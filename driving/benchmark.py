"""The project's benchmarks, each printing its figures as it measures them.

============  ===============================================================================
``env``       policy and simulated steps/s of every scenario (stock simulation):
              :func:`run_env_bench`
``sim``       stock vs accelerated simulation side by side, with the speed-up:
              :func:`run_sim_bench`
``collect``   collection frames/s with 1 and 2 workers (or any counts); time and size of a
              dataset: :func:`run_collect_bench`
``train``     training samples/s through Lightning beside a bare PyTorch loop:
              :mod:`driving.train.benchmark`
``evaluate``  a network agent's closed-loop frames/s per worker count and layout:
              :mod:`driving.evaluation_benchmark`
============  ===============================================================================

``env`` drives the ``keep-lane`` agent (zero actions, negligible decision time) through each
scenario in one process and reports decisions per second, simulator steps per second
(decisions times ``simulation_frequency / policy_frequency``) and ms per decision, observation
included.

``sim`` drives the same agent through the stock and the fast simulation in ONE process,
alternating between them round by round so that both see the same machine load, and reports
for each: policy steps/s (a whole ``DrivingEnv.step``: simulation, grayscale observation,
``info`` without the IDM hint, as in ``env``), simulated steps/s, observation frames/s (drawing
the observation alone) and the speed-up (fast over stock policy steps/s). Scenarios that the
fast path does not cover run stock on both sides and are marked ``stock fallback`` (speed-up 1
by construction, not measured twice).

``collect`` makes two measurements, both through the real collection path
(:func:`driving.collection.collect`: rollout, labelling, shard writing with checksums):

1. frames/s with 1 and with 2 workers on the same seeds, side by side, with the speed-up;
2. the wall time and size on disk of a dataset of ``frames`` frames (collected with
   ``workers``), the time to open it and to read all its frames, and the time ``data verify``
   takes. When ``frames`` is below :data:`REFERENCE_FRAMES`, the figures are also extrapolated
   linearly and printed as an extrapolation, not a measurement.

Its datasets are written to a temporary folder (under ``dir``) and removed afterwards, except
the measured one when ``keep`` asks to keep it (``noise_steer`` then collects it with DART
noise, as ``driving collect`` would, so it can be trained on).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import envs
from agents.registry import make_agent
from driving.collection import collect
from driving.dataset import DatasetWriter, DemoDataset, check_new_root, verify_dataset
from driving.files import size_on_disk
from driving.mixers import DartNoise
from driving.seeds import training_seeds
from envs.errors import UserError
from envs.fast import is_supported
from envs.scenarios import Scenario, get_scenario

ROUNDS = 3
"""Alternating stock/fast rounds per scenario in ``sim`` (each gets ``steps / ROUNDS``)."""
REFERENCE_FRAMES = 50_000
"""The dataset size the ``collect`` extrapolation is given for."""


def measure_env(name: str, steps: int, seed: int, fast: bool | None = None) -> dict[str, float]:
    """Step scenario ``name`` for ``steps`` decisions (resetting as needed); return rates."""
    env = envs.make(name, fast=fast, idm_hint=False)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    env.reset(seed=seed)
    started = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            seed += 1
            env.reset(seed=seed)
    elapsed = time.perf_counter() - started
    env.close()
    ratio = env.scenario.simulation_frequency // env.scenario.policy_frequency
    return {
        "policy_steps_per_s": steps / elapsed,
        "sim_steps_per_s": steps * ratio / elapsed,
        "ms_per_policy_step": 1000 * elapsed / steps,
    }


def run_env_bench(scenarios: Sequence[str], steps: int, seed: int) -> dict[str, Any]:
    """Print and return :func:`measure_env` for each scenario."""
    results = {}
    print(f"{'scenario':<15}{'policy steps/s':>16}{'sim steps/s':>14}{'ms/decision':>13}")
    for name in scenarios:
        r = measure_env(name, steps, seed)
        results[name] = r
        print(
            f"{name:<15}{r['policy_steps_per_s']:>16.1f}{r['sim_steps_per_s']:>14.1f}"
            f"{r['ms_per_policy_step']:>13.1f}",
            flush=True,
        )
    return results


def frame_rate(name: str, frames: int, seed: int, fast: bool) -> float:
    """Observation frames drawn per second (``observation_type.observe()`` alone)."""
    env = envs.make(name, fast=fast, idm_hint=False)
    env.reset(seed=seed)
    started = time.perf_counter()
    for _ in range(frames):
        env.sim.observation_type.observe()
    elapsed = time.perf_counter() - started
    env.close()
    return frames / elapsed


def compare_sim(name: str, steps: int, seed: int) -> dict[str, object]:
    """Stock and fast figures for scenario ``name``, measured in alternating rounds."""
    covered = is_supported(get_scenario(name).env_id)
    sides = (False, True) if covered else (False,)
    per_round = max(1, steps // ROUNDS)
    seconds = dict.fromkeys(sides, 0.0)
    rates: dict[bool, dict[str, float]] = {}
    for r in range(ROUNDS):
        for fast in sides if r % 2 == 0 else sides[::-1]:
            rates[fast] = measure_env(name, per_round, seed + r, fast=fast)
            seconds[fast] += per_round / rates[fast]["policy_steps_per_s"]
    sim_per_policy = rates[False]["sim_steps_per_s"] / rates[False]["policy_steps_per_s"]
    result: dict[str, object] = {"fast_path": "covered" if covered else "stock fallback"}
    for fast in sides:
        policy_rate = ROUNDS * per_round / seconds[fast]
        result["fast" if fast else "stock"] = {
            "policy_steps_per_s": policy_rate,
            "sim_steps_per_s": policy_rate * sim_per_policy,
            "obs_frames_per_s": frame_rate(name, per_round, seed, fast),
            "ms_per_policy_step": 1000 / policy_rate,
        }
    if not covered:
        result["fast"] = result["stock"]
    result["speedup"] = result["fast"]["policy_steps_per_s"] / result["stock"]["policy_steps_per_s"]
    return result


def run_sim_bench(scenarios: Sequence[str], steps: int, seed: int) -> dict[str, Any]:
    """Print and return :func:`compare_sim` for each scenario."""
    print(
        f"{'scenario':<15}{'side':<7}{'policy steps/s':>15}{'sim steps/s':>13}"
        f"{'obs frames/s':>14}{'ms/step':>9}{'speed-up':>10}"
    )
    results = {}
    for name in scenarios:
        r = compare_sim(name, steps, seed)
        results[name] = r
        for side in ("stock", "fast"):
            f = r[side]
            note = f"{r['speedup']:>9.1f}x" if side == "fast" else ""
            if side == "fast" and r["fast_path"] != "covered":
                note = "  stock fallback"
            print(
                f"{name:<15}{side:<7}{f['policy_steps_per_s']:>15.1f}{f['sim_steps_per_s']:>13.1f}"
                f"{f['obs_frames_per_s']:>14.1f}{f['ms_per_policy_step']:>9.2f}{note}",
                flush=True,
            )
    return results


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


@dataclass
class CollectBench:
    """What ``driving bench collect`` measures (see the module docstring).

    Attributes:
        agent: the collecting agent spec.
        scenario: the scenario name.
        overrides: its overrides.
        episodes: episodes per worker count of the 1-vs-2-workers rows.
        frames: frames of the dataset whose time and size are measured.
        workers: workers for that dataset.
        fast: the accelerated simulation (None: the project default).
        dir: where the temporary datasets go (None: the system's temporary folder).
        keep: keep the measured dataset: move it to this new folder.
        noise_steer: DART steering noise for the measured dataset.
        counts: the worker counts measured side by side (speed-ups over the first).
    """

    agent: str = "modular-oracle"
    scenario: str = "highway"
    overrides: dict[str, Any] | None = None
    episodes: int = 4
    frames: int = REFERENCE_FRAMES
    workers: int = 2
    fast: bool | None = None
    dir: Path | None = None
    keep: Path | None = None
    noise_steer: float = 0.0
    counts: tuple[int, ...] = (1, 2)


def run_collect_bench(args: CollectBench) -> dict[str, Any]:
    """Print and return the ``collect`` figures (see the module docstring)."""
    if args.keep is not None:
        check_new_root(args.keep)
    scenario = get_scenario(args.scenario).with_overrides(args.overrides or {})
    seeds = training_seeds(scenario, args.episodes, None)
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
    where = args.dir
    if args.keep is not None and where is None:  # same filesystem: keeping is a rename
        args.keep.parent.mkdir(parents=True, exist_ok=True)
        where = args.keep.parent
    with tempfile.TemporaryDirectory(dir=where, prefix="bench-collect-") as tmp:
        tmp_path = Path(tmp)
        print(f"{'workers':>8}{'episodes':>10}{'frames':>8}{'seconds':>9}{'frames/s':>10}")
        rates = []
        for workers in args.counts:
            r = timed_collection(
                scenario, args.agent, seeds, workers, tmp_path / f"w{workers}", args.fast
            )
            r["speedup"] = r["frames_per_s"] / (rates[0] if rates else r)["frames_per_s"]
            rates.append(r)
            print(
                f"{workers:>8}{r['episodes']:>10}{r['frames']:>8}{r['seconds']:>9.1f}"
                f"{r['frames_per_s']:>10.1f}  x{r['speedup']:.2f}",
                flush=True,
            )
        for r in rates[1:]:
            print(f"speed-up with {r['workers']} workers: x{r['speedup']:.2f}")
        results["workers"] = rates
        per_episode = rates[0]["frames"] / rates[0]["episodes"]
        n_episodes = math.ceil(args.frames / per_episode)
        if n_episodes > len(scenario.train_seeds):
            raise UserError(f"--frames {args.frames} needs more episodes than the training seeds")
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
    return results
