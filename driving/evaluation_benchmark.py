"""Closed-loop frames/s of a network agent per worker count and layout (``driving bench
evaluate``).

The agent (a checkpoint, or by default an untrained network of the default architecture:
inference costs the same whatever the weights) drives the same held-out seeds with each worker
count, and above one worker in each layout of :data:`EVALUATE_MODES`: inside each worker (one
thread each, the CPU default; not offered on a GPU), here pipelined (one group of environments
steps while the network decides for the other, the GPU default) and here in lockstep (every
environment waits for every decision). Apart from :mod:`driving.benchmark` so that the
simulation benchmarks do not import torch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from agents.checkpoint import policy_record
from agents.cnn_agent import CnnAgent, default_device
from agents.networks import NetworkConfig, build_network
from agents.registry import make_agent
from driving.rollout import rollout
from driving.seeds import evaluation_seeds
from envs.errors import UserError
from envs.scenarios import Scenario, get_scenario


@dataclass
class EvaluateBench:
    """What ``driving bench evaluate`` measures (see the module docstring).

    Attributes:
        agent: a network agent spec ``cnn:PATH`` (None: an untrained default network).
        scenario: the scenario name.
        overrides: its overrides.
        episodes: held-out episodes per row.
        counts: worker counts measured side by side.
        fast: the accelerated simulation (None: the project default).
    """

    agent: str | None = None
    scenario: str = "highway"
    overrides: dict[str, Any] | None = None
    episodes: int = 4
    counts: tuple[int, ...] = (1, 2)
    fast: bool | None = None


EVALUATE_MODES = ("in workers", "pipelined", "lockstep")
"""Where a network decides above one worker: inside each worker (its CPU layout), or here,
pipelined over two groups of environments (its GPU layout) or in lockstep."""


def untrained_network_agent(scenario: Scenario) -> CnnAgent:
    """A CNN agent of the default architecture on the default device, its output layer zeroed:
    it keeps its lane at its speed, so episodes run their length, and its inference costs what
    a trained network's does."""
    config = NetworkConfig()
    network = build_network(config, scenario.observation.shape, scenario.action.size)
    output = [m for m in network.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        output.weight.zero_()
        output.bias.zero_()
    record = policy_record(scenario, config, training_frames=0, expert_labels=0)
    return CnnAgent(scenario, network, record, device=default_device())


def run_evaluate_bench(args: EvaluateBench) -> dict[str, Any]:
    """Print and return closed-loop frames/s of a network agent per worker count and mode."""
    scenario = get_scenario(args.scenario).with_overrides(args.overrides or {})
    agent = make_agent(args.agent, scenario) if args.agent else untrained_network_agent(scenario)
    if not isinstance(agent, CnnAgent):
        raise UserError(f"bench evaluate measures network agents (cnn:PATH), not {agent.name}")
    seeds = evaluation_seeds(scenario, args.episodes, None)
    print(
        f"bench evaluate: {agent.name} ({agent.parameters:,} parameters, "
        f"{agent.describe().get('device')}) on {scenario.name} {scenario.overrides or ''}; "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    print(f"{'workers':>8}{'mode':>12}{'episodes':>10}{'frames':>8}{'seconds':>9}{'frames/s':>10}")
    rows: list[dict[str, Any]] = []
    for workers in args.counts:
        modes = [m for m in EVALUATE_MODES if agent.decides_in_worker or m != "in workers"]
        for mode in modes if workers > 1 else ["in-process"]:
            started = time.perf_counter()
            episodes = rollout(
                agent, scenario, seeds, workers=workers, fast=args.fast,
                agent_here=mode != "in workers", pipeline=mode == "pipelined",
            )  # fmt: skip
            seconds = time.perf_counter() - started
            frames = sum(ep.steps for ep in episodes)
            row = {
                "workers": workers,
                "mode": mode,
                "episodes": len(episodes),
                "frames": frames,
                "seconds": seconds,
                "frames_per_s": frames / seconds,
            }
            row["speedup"] = row["frames_per_s"] / (rows[0] if rows else row)["frames_per_s"]
            rows.append(row)
            print(
                f"{workers:>8}{mode:>12}{len(episodes):>10}{frames:>8}{seconds:>9.1f}"
                f"{row['frames_per_s']:>10.1f}  x{row['speedup']:.2f}",
                flush=True,
            )
    agent.close()
    return {"agent": agent.describe(), "scenario": scenario.to_dict(), "rows": rows}
