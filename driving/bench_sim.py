"""``driving bench sim``: stock and accelerated simulation side by side, with the speed-up.

For each scenario, drives the ``keep-lane`` agent (zero actions) through the stock and the fast
simulation in ONE process, alternating between them round by round so that both see the same
machine load, and reports for each: policy steps/s (a whole ``DrivingEnv.step``: simulation,
grayscale observation, ``info`` without the IDM hint, as in ``bench env``), simulated steps/s,
observation frames/s (drawing the observation alone) and the speed-up (fast over stock policy
steps/s). Scenarios that the fast path does not cover run stock on both sides and are marked
``stock fallback`` (speed-up 1 by construction, not measured twice).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

import envs
from driving.argparse_util import ArgumentParser, positive_int
from driving.bench_env import measure
from envs.fast import is_supported
from envs.scenarios import SCENARIOS, get_scenario

ROUNDS = 3
"""Alternating stock/fast rounds per scenario (each gets ``steps / ROUNDS`` decisions)."""


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


def compare(name: str, steps: int, seed: int) -> dict[str, object]:
    """Stock and fast figures for scenario ``name``, measured in alternating rounds."""
    covered = is_supported(get_scenario(name).env_id)
    sides = (False, True) if covered else (False,)
    per_round = max(1, steps // ROUNDS)
    seconds = dict.fromkeys(sides, 0.0)
    rates: dict[bool, dict[str, float]] = {}
    for r in range(ROUNDS):
        for fast in sides if r % 2 == 0 else sides[::-1]:
            rates[fast] = measure(name, per_round, seed + r, fast=fast)
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


def main(argv: Sequence[str] | None = None) -> int:
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
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    print(
        f"{'scenario':<15}{'side':<7}{'policy steps/s':>15}{'sim steps/s':>13}"
        f"{'obs frames/s':>14}{'ms/step':>9}{'speed-up':>10}"
    )
    results = {}
    for name in args.scenarios:
        r = compare(name, args.steps, args.seed)
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
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
