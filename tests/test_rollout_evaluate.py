"""The rollout loop and closed-loop evaluation: reproducible, parallel, honest statistics."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from agents.registry import make_agent
from driving.evaluation import evaluate_agent
from driving.metrics import METRICS, episode_metrics
from driving.rollout import Episode, rollout
from driving.stats import summarize, t_interval, wilson_interval
from envs.scenarios import get_scenario
from tests.support import assert_one_line_error

SEEDS = [1_000_000, 1_000_001, 1_000_002]


def _rows_without_timing(rows):
    return [{k: v for k, v in row.items() if k != "latency_ms"} for row in rows]


@pytest.mark.parametrize("spec", ["idm", "random"])
def test_same_seeds_same_numbers_with_one_or_two_workers(spec, tiny):
    scenario = get_scenario("highway").with_overrides(tiny)
    one = evaluate_agent(make_agent(spec, scenario), scenario, SEEDS, workers=1, progress=False)
    again = evaluate_agent(make_agent(spec, scenario), scenario, SEEDS, workers=1, progress=False)
    two = evaluate_agent(make_agent(spec, scenario), scenario, SEEDS, workers=2, progress=False)
    assert _rows_without_timing(one.rows) == _rows_without_timing(again.rows)
    assert _rows_without_timing(one.rows) == _rows_without_timing(two.rows)
    assert [row["seed"] for row in two.rows] == SEEDS


def test_idm_completes_tiny_episodes(tiny):
    scenario = get_scenario("highway").with_overrides(tiny)
    episodes = rollout(make_agent("idm", scenario), scenario, SEEDS)
    for ep in episodes:
        assert ep.truncated and not ep.terminated
        assert ep.steps == scenario.steps_per_episode
        row = episode_metrics(ep)
        assert row["completed"] == 1.0 and row["collided"] == 0.0
        assert row["mean_speed_mps"] > 15


def test_random_fails_more_often_than_idm():
    scenario = get_scenario("highway").with_overrides({"vehicles_count": 20, "duration": 8})
    seeds = list(range(1_000_000, 1_000_005))
    results = {
        spec: evaluate_agent(make_agent(spec, scenario), scenario, seeds, progress=False)
        for spec in ("random", "idm")
    }
    random_, idm = (results[s].summary.metrics for s in ("random", "idm"))
    # random leaves the road (which ends a highway episode) or hits a car; idm does neither
    assert random_["completed"].mean < idm["completed"].mean
    assert random_["interventions"].mean > idm["interventions"].mean
    assert random_["autonomy"].mean < idm["autonomy"].mean


def test_rollout_records_frames_and_expert_labels(tiny):
    scenario = get_scenario("highway").with_overrides(tiny)
    agent, expert = make_agent("keep-lane", scenario), make_agent("idm", scenario)
    (ep,) = rollout(agent, scenario, [7], expert=expert, record_frames=True)
    assert ep.frames.shape == (ep.steps, *scenario.observation.shape)
    assert ep.frames.dtype == np.uint8
    assert ep.expert_actions.shape == ep.actions.shape == (ep.steps, 2)
    np.testing.assert_array_equal(ep.actions, 0.0)  # keep-lane drove
    assert np.abs(ep.expert_actions).max() > 0  # while idm labelled
    for key, values in ep.metrics.items():
        assert values.shape == (ep.steps + 1,), key


def test_mixer_decides_the_executed_action(tiny):
    scenario = get_scenario("highway").with_overrides(tiny)
    agent = make_agent("keep-lane", scenario)

    def brake(seed, step, agent_action, expert_action):
        return np.array([-1.0, 0.0], dtype=np.float32)

    (ep,) = rollout(agent, scenario, [7], mixer=brake)
    np.testing.assert_array_equal(ep.agent_actions, 0.0)
    np.testing.assert_array_equal(ep.actions[:, 0], -1.0)
    assert ep.metrics["speed"][-1] < ep.metrics["speed"][0] - 5


def test_wilson_and_t_intervals_known_values():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = t_interval([1.0, 2.0, 3.0, 4.0])
    assert (low, high) == pytest.approx((0.4457, 4.5543), abs=1e-4)
    assert t_interval([3.0]) is None
    assert summarize([1, 0, 1, 1], rate=True).n == 4
    assert summarize([float("nan"), 2.0, 4.0], rate=False).n == 2


def _synthetic_episode(ttc, on_road, crashed, steer):
    n = len(ttc)
    metrics = {
        "ttc_front": np.array([math.inf, *ttc]),
        "on_road": np.array([1.0, *on_road]),
        "crashed": np.array([0.0, *crashed]),
        "speed": np.full(n + 1, 20.0),
        "lane_offset": np.zeros(n + 1),
        "heading_error": np.zeros(n + 1),
        "heading": np.zeros(n + 1),
        "gap_front": np.full(n + 1, math.inf),
        "gap_rear": np.full(n + 1, math.inf),
        "speed_limit": np.full(n + 1, 30.0),
        "lane": np.zeros(n + 1),
        "x": np.arange(n + 1) * 4.0,
        "y": np.zeros(n + 1),
    }
    applied = np.zeros((n, 2))
    applied[:, 1] = steer
    return Episode(
        seed=0,
        steps=n,
        dt=0.2,
        terminated=bool(crashed[-1]),
        truncated=not crashed[-1],
        actions=applied,
        agent_actions=applied,
        expert_actions=None,
        applied=applied,
        rewards=np.ones(n),
        metrics=metrics,
        latency_ms=np.ones(n),
    )


def test_interventions_count_rising_edges_and_autonomy_follows_nvidia():
    inf = math.inf
    ep = _synthetic_episode(
        ttc=[inf, 0.5, 0.4, inf, inf, 0.8] + [inf] * 44,
        on_road=[1.0] * 50,
        crashed=[0.0] * 50,
        steer=[0.0] * 50,
    )
    row = episode_metrics(ep)
    assert row["interventions"] == 2
    assert row["autonomy"] == pytest.approx(1 - 2 * 6 / 10.0)
    assert row["distance_m"] == pytest.approx(200.0)
    assert row["completed"] == 1.0 and row["steering_jerk_radps2"] == 0.0


def test_offroad_and_collision_are_not_completed():
    offroad = _synthetic_episode([math.inf] * 5, [1, 1, 0, 0, 1], [0] * 5, [0.0] * 5)
    assert episode_metrics(offroad)["completed"] == 0.0
    assert episode_metrics(offroad)["offroad_time_s"] == pytest.approx(0.4)
    crash = _synthetic_episode([math.inf] * 5, [1] * 5, [0, 0, 0, 0, 1], [0.1, -0.1] * 2 + [0])
    row = episode_metrics(crash)
    assert row["collided"] == 1.0 and row["completed"] == 0.0
    assert row["steering_jerk_radps2"] > 0


def test_evaluate_cli_writes_csv_and_summary(driving_cli, tmp_path):
    out = tmp_path / "eval"
    result = driving_cli(
        [
            "evaluate",
            "--agent",
            "idm",
            "--episodes",
            "2",
            "--workers",
            "2",
            "--overrides",
            '{"vehicles_count": 8, "duration": 3}',
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "collided" in result.stdout and "2 episodes" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    scenario = get_scenario("highway")
    assert all(seed in scenario.evaluation_seeds for seed in summary["seeds"])
    assert summary["overrides"] == {"vehicles_count": 8, "duration": 3}
    assert set(summary["metrics"]) == set(METRICS)
    for stat in summary["metrics"].values():
        assert set(stat) == {"mean", "ci95", "n"} and stat["n"] == 2
    assert summary["versions"]["highway-env"] == "1.12.1"
    with open(out / "episodes.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["seed"]) for r in rows] == summary["seeds"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--agent", "robot"], "unknown agent 'robot'"),
        (["--agent", "cnn"], "checkpoint"),
        (["--agent", "idm", "--seeds", "9:3"], "seed range"),
        (["--agent", "idm", "--seeds", "x"], "seed range"),
        (["--agent", "idm", "--scenario", "moon"], "unknown scenario 'moon'"),
        (["--agent", "idm", "--episodes", "0"], "positive integer"),
        (["--agent", "idm", "--overrides", "{bad json"], "JSON"),
        (["--agent", "idm", "--overrides", '{"lanes": 3}'], "lanes_count"),
        (["--agent", "cnn:/no/such.ckpt"], "such.ckpt"),
    ],
)
def test_evaluate_bad_input_is_a_one_line_error(driving_cli, tmp_path, args, needle):
    base = ["evaluate", "--out", str(tmp_path / "o"), "--quiet"]
    if "--episodes" not in args:
        base += ["--episodes", "1"]
    assert_one_line_error(driving_cli(base + args), needle)
