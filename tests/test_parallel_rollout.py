"""Where decisions are taken (issue 19): in the workers, in a pool of episode workers, or in the
main process pipelined with the stepping; every layout drives the same episodes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading

import numpy as np
import pytest
import torch

import envs
from agents.base import Agent
from agents.checkpoint import policy_record
from agents.cnn_agent import CnnAgent
from agents.networks import NetworkConfig, build_network
from agents.registry import make_agent
from driving.mixers import BetaMixture, DartNoise
from driving.rollout import Episode, StepEvent, _Layout, iter_episodes, rollout
from driving.workers import make_vector_env, unbatch_info
from envs.scenarios import get_scenario
from tests.support import TINY, run_driving

SEEDS = [1_000, 1_001, 1_002]


def _same(a: list[Episode], b: list[Episode]) -> None:
    for x, y in zip(a, b, strict=True):
        assert (x.seed, x.steps, x.terminated, x.truncated) == (
            y.seed,
            y.steps,
            y.terminated,
            y.truncated,
        )
        for name in ("actions", "agent_actions", "expert_actions", "applied", "rewards", "frames"):
            xs, ys = getattr(x, name), getattr(y, name)
            assert (xs is None) == (ys is None), name
            if xs is not None:
                assert xs.tobytes() == ys.tobytes(), name
        assert x.metrics.keys() == y.metrics.keys()
        for key in x.metrics:
            assert x.metrics[key].tobytes() == y.metrics[key].tobytes(), key


@pytest.fixture
def scenario(tiny):
    return get_scenario("highway").with_overrides(tiny)


def _cnn(scenario) -> CnnAgent:
    torch.manual_seed(0)
    config = NetworkConfig(width=0.25, hidden=[8])
    network = build_network(config, scenario.observation.shape, scenario.action.size)
    record = policy_record(scenario, config, training_frames=1, expert_labels=1)
    return CnnAgent(scenario, network, record, device="cpu")


def test_layout_follows_where_each_agent_can_decide(scenario):
    oracle, cnn = make_agent("modular-oracle", scenario), _cnn(scenario)
    pool = _Layout.choose(oracle, oracle, workers=2, watched=False)
    assert pool.pool and pool.remote == {"agent", "expert"} and not pool.main_reads_scene
    cpu_dagger = _Layout.choose(cnn, oracle, workers=2, watched=False)  # a CPU network
    assert cpu_dagger.pool and cpu_dagger.remote == {"agent", "expert"}
    gpu_dagger = _Layout.choose(cnn, oracle, workers=2, watched=False, agent_here=True)
    assert not gpu_dagger.pool and gpu_dagger.remote == {"expert"} and gpu_dagger.pipelined
    assert gpu_dagger.inference_threads(workers=2) >= 1
    watched = _Layout.choose(oracle, None, workers=2, watched=True)
    assert not watched.pool and watched.remote == {"agent"} and watched.main_reads_scene
    assert _Layout.choose(cnn, None, workers=1, watched=False).in_process


def test_pool_of_episode_workers_drives_the_same_episodes_as_one_process(scenario):
    noise = DartNoise.from_settings(scenario.action, 0.02, 0.0)
    runs = [
        rollout(
            make_agent("modular-oracle", scenario),
            scenario,
            SEEDS,
            workers=workers,
            mixer=noise,
            record_frames=True,
        )
        for workers in (1, 2)
    ]
    _same(*runs)
    assert all(ep.latency_ms.shape == (ep.steps,) for ep in runs[1])
    assert not multiprocessing.active_children(), "pool workers left running"


class _BatchOnly(Agent):
    """A stand-in for a network agent: decides in the main process, for the whole batch, with
    arithmetic whose result does not depend on the batch (unlike a network's float sums)."""

    decides_in_worker = False

    def act_batch(self, obs, infos, slots):
        brightness = obs.reshape(len(obs), -1).mean(axis=1, dtype=np.float64)
        steer = np.sin(brightness) * 0.05
        return np.stack([np.full_like(steer, 0.1), steer], axis=1).astype(np.float32)


def test_main_side_agent_pipelined_with_expert_in_the_workers_drives_the_same_episodes(scenario):
    """DAgger's layout: the agent decides here for one group of environments while the other
    steps; the expert labels inside the workers."""
    mixer = BetaMixture(0.5, round=1)
    runs = []
    for workers in (1, 3):  # 3: groups of unequal size
        layout = _Layout.choose(_BatchOnly(scenario), None, workers, watched=False)
        assert layout.pipelined
        expert = make_agent("modular-oracle:memoryless", scenario)
        runs.append(
            rollout(
                _BatchOnly(scenario),
                scenario,
                [*SEEDS, 1003],
                workers=workers,
                expert=expert,
                mixer=mixer,
                record_frames=True,
            )
        )
    _same(*runs)
    assert runs[0][0].expert_actions is not None


def test_network_agent_decides_on_the_frames_it_was_shown_in_either_layout(scenario):
    """A CNN pipelined here (a GPU's layout) or deciding in the workers (a CPU's): each action
    is the network's on the recorded frame (to float rounding: the batch size changes the order
    of the sums), inference threads are restored afterwards."""
    agent = _cnn(scenario)
    threads = torch.get_num_threads()
    episodes = [
        ep
        for here in (True, False)
        for ep in rollout(
            agent,
            scenario,
            SEEDS,
            workers=2,
            expert=make_agent("modular-oracle", scenario),
            record_frames=True,
            agent_here=here,
        )
    ]
    assert torch.get_num_threads() == threads, "inference threads not restored"
    assert len(episodes) == 2 * len(SEEDS)
    for ep in episodes:
        with torch.no_grad():
            expected = agent.network.eval()(torch.from_numpy(ep.frames)).numpy()
        np.testing.assert_allclose(ep.agent_actions, expected, atol=1e-5)
        assert ep.expert_actions is not None and ep.expert_actions.shape == ep.actions.shape


def test_agents_deciding_in_workers_send_their_decisions_not_the_scene(scenario):
    vec = make_vector_env(
        scenario, 2, in_process=False, idm_hint=False,
        deciding={"agent": make_agent("modular-oracle", scenario)}, explain=True,
        keep_scene=False,
    )  # fmt: skip
    try:
        obs, info = vec.reset(seed=SEEDS[:2])
        infos = unbatch_info(info, 2)
    finally:
        vec.close()
    for slot, one in enumerate(infos):
        assert "scene" not in one and "metrics" in one
        decision = one["decisions"]["agent"]
        env, local = envs.make(scenario, idm_hint=False), make_agent("modular-oracle", scenario)
        local_obs, local_info = env.reset(seed=SEEDS[slot])
        local.reset(SEEDS[slot], 0)
        assert np.array_equal(local_obs, obs[slot])
        assert decision.action.tobytes() == local.act(local_obs, local_info, 0).tobytes()
        assert decision.latency_ms > 0 and "decision" in decision.explanation
        env.close()


def test_watched_rollout_with_agents_in_workers_matches_one_process(scenario):
    seen: list[tuple[int, int, str]] = []

    def on_step(event: StepEvent) -> None:
        seen.append((event.seed, event.step, event.explanation["decision"]))
        assert "scene" in event.info  # a hook may read everything

    one = rollout(make_agent("modular-oracle", scenario), scenario, SEEDS, workers=1)
    two = rollout(
        make_agent("modular-oracle", scenario), scenario, SEEDS, workers=2, on_step=on_step
    )
    _same(one, two)
    assert len(seen) == sum(ep.steps for ep in two)


def test_a_killed_pool_worker_costs_its_episode_and_the_run_carries_on_by_flag(scenario):
    long = scenario.with_overrides({"duration": 120})  # seconds of driving per episode
    failures: list[tuple[int, str]] = []

    def kill_first_worker() -> None:
        victim = min(multiprocessing.active_children(), key=lambda p: p.pid)  # slot 0
        os.kill(victim.pid, signal.SIGKILL)

    timer = threading.Timer(1.0, kill_first_worker)
    timer.start()
    try:
        done = [
            ep.seed
            for ep in iter_episodes(
                make_agent("idm", long),
                long,
                SEEDS,
                workers=2,
                on_failure=lambda seed, reason: failures.append((seed, reason)),
            )
        ]
    finally:
        timer.cancel()
    assert failures == [(SEEDS[0], "worker killed by signal 9")]
    assert sorted(done) == SEEDS[1:]  # the interrupted one was driven again from its start
    assert not multiprocessing.active_children(), "pool workers left running"


def test_bench_evaluate_prints_each_worker_count_pipelined_and_in_lockstep(tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "evaluate", "--episodes", "2", "--overrides", json.dumps(TINY)]
    result = run_driving([*args, "--counts", "1", "2", "--json", str(out)])
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["workers"], r["mode"]) for r in rows] == [
        (1, "in-process"),
        (2, "in workers"),
        (2, "pipelined"),
        (2, "lockstep"),
    ]
    # the zeroed network's actions do not depend on the batch: the same episodes in every row
    assert len({r["frames"] for r in rows}) == 1 and rows[0]["frames"] > 2
    assert rows[0]["speedup"] == 1.0 and all(r["frames_per_s"] > 0 for r in rows)
    assert "x1.00" in result.stdout and "pipelined" in result.stdout


def test_a_cpu_network_drives_the_same_episodes_with_one_or_two_workers(scenario):
    """On the CPU a network decides one observation at a time on one thread, in-process or in
    a worker, so its float sums and its episodes do not depend on the number of workers."""
    runs = [rollout(_cnn(scenario), scenario, SEEDS, workers=w, record_frames=True) for w in (1, 2)]
    _same(*runs)
