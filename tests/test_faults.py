"""Fault injection into real processes: what dies must cost the episode, not the run.

Run alone with ``pytest -m faults``. Each test injects a real fault (a signal to a real worker
process, a full disk, a hostile file) and checks the outcome.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import numpy as np
import pytest

from agents.registry import make_agent
from driving.rollout import WorkerFailure, iter_episodes, rollout
from envs.scenarios import get_scenario
from tests.conftest import TINY

pytestmark = pytest.mark.faults

SEEDS = [11, 12, 13, 14, 15]


def _killer(at_step: int, victim_seed: int) -> tuple[object, list[int]]:
    """An ``on_step`` hook that SIGKILLs a worker process when ``victim_seed`` reaches a step.

    Which worker runs which slot is not exposed, so it kills the worker of the slot's position
    among the live children (slots are started in order, one process per slot).
    """
    killed: list[int] = []

    def on_step(event) -> None:
        if killed or event.seed != victim_seed or event.step != at_step:
            return
        children = sorted(multiprocessing.active_children(), key=lambda p: p.pid)
        victim = children[event.slot]
        os.kill(victim.pid, signal.SIGKILL)
        killed.append(victim.pid)

    return on_step, killed


def test_a_killed_worker_names_its_seed_and_the_run_carries_on_by_flag():
    scenario = get_scenario("highway").with_overrides(TINY)
    agent = make_agent("idm", scenario)
    reference = {ep.seed: ep for ep in rollout(agent, scenario, SEEDS)}

    on_step, killed = _killer(at_step=4, victim_seed=12)
    failures: list[tuple[int, str]] = []
    survived = {
        ep.seed: ep
        for ep in iter_episodes(
            agent,
            scenario,
            SEEDS,
            workers=2,
            on_step=on_step,
            on_failure=lambda seed, reason: failures.append((seed, reason)),
        )
    }
    assert killed, "the hook never fired"
    assert failures == [(12, "worker killed by signal 9")]
    assert sorted(survived) == [11, 13, 14, 15]
    for seed, ep in survived.items():  # the interrupted episode was rerun from its start
        np.testing.assert_array_equal(ep.actions, reference[seed].actions)
        np.testing.assert_array_equal(ep.metrics["x"], reference[seed].metrics["x"])


def test_a_killed_worker_stops_the_run_cleanly_by_default():
    scenario = get_scenario("highway").with_overrides(TINY)
    agent = make_agent("idm", scenario)
    on_step, killed = _killer(at_step=3, victim_seed=13)
    finished = []
    with pytest.raises(WorkerFailure, match="seed 13 \\(worker killed by signal 9\\)") as info:
        for ep in iter_episodes(agent, scenario, SEEDS, workers=2, on_step=on_step):
            finished.append(ep)
    assert killed
    assert all(ep.steps == scenario.steps_per_episode for ep in finished)
    assert 13 not in {ep.seed for ep in finished}
    assert 13 not in info.value.interrupted
    assert not multiprocessing.active_children(), "workers left running"
