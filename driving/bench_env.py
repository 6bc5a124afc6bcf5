"""``driving bench env``: how fast each scenario steps, in policy and simulated steps per second.

Drives the ``keep-lane`` agent (zero actions, negligible decision time) through each scenario in
one process and reports decisions per second, simulator steps per second (decisions times
``simulation_frequency / policy_frequency``) and ms per decision, observation included.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

import numpy as np

import envs
from driving.argparse_util import ArgumentParser, positive_int
from envs.scenarios import SCENARIOS


def measure(name: str, steps: int, seed: int, fast: bool | None = None) -> dict[str, float]:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="driving bench env", description=__doc__)
    parser.add_argument("--steps", type=positive_int, default=100, help="decisions per scenario")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    results = {}
    print(f"{'scenario':<15}{'policy steps/s':>16}{'sim steps/s':>14}{'ms/decision':>13}")
    for name in args.scenario or list(SCENARIOS):
        r = measure(name, args.steps, args.seed)
        results[name] = r
        print(
            f"{name:<15}{r['policy_steps_per_s']:>16.1f}{r['sim_steps_per_s']:>14.1f}"
            f"{r['ms_per_policy_step']:>13.1f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
