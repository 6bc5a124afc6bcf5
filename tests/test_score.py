"""The per-episode driving score: hand-built episodes with known scores, and a real one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.registry import make_agent
from driving.metrics import METRICS, episode_metrics
from driving.rollout import Episode, rollout
from driving.score import (
    MAX_OVERSPEED_MPS,
    WEIGHT_COMFORT,
    WEIGHT_LANE_KEEPING,
    WEIGHT_PROGRESS,
    WEIGHT_SPEED_LIMIT,
    WEIGHT_TTC,
    DrivingScore,
    episode_score,
)
from envs.scenarios import get_scenario

DT = 0.2
LIMIT = 30.0
WEIGHTS = {
    "progress": WEIGHT_PROGRESS,
    "ttc": WEIGHT_TTC,
    "speed_limit": WEIGHT_SPEED_LIMIT,
    "comfort": WEIGHT_COMFORT,
    "lane_keeping": WEIGHT_LANE_KEEPING,
}
SUB_SCORES = tuple(WEIGHTS)


def make_episode(speed, **overrides) -> Episode:
    """An episode on a straight lane along +x driven at ``speed`` ``(T + 1,)`` [m/s].

    Positions integrate ``speed`` along ``heading`` (default 0, the lane's heading, so the
    heading error equals the heading); any step metric can be overridden by keyword.
    """
    speed = np.asarray(speed, dtype=float)
    n = len(speed)
    heading = np.asarray(overrides.pop("heading", np.zeros(n)), dtype=float)
    step = speed[:-1] * DT
    metrics = {
        "speed": speed,
        "heading": heading,
        "heading_error": heading.copy(),
        "x": np.concatenate([[0.0], np.cumsum(step * np.cos(heading[:-1]))]),
        "y": np.concatenate([[0.0], np.cumsum(step * np.sin(heading[:-1]))]),
        "lane_offset": np.zeros(n),
        "on_road": np.ones(n),
        "crashed": np.zeros(n),
        "gap_front": np.full(n, math.inf),
        "gap_rear": np.full(n, math.inf),
        "ttc_front": np.full(n, math.inf),
        "lane": np.zeros(n),
        "speed_limit": np.full(n, LIMIT),
    }
    for key, value in overrides.items():
        assert key in metrics, key
        metrics[key] = np.asarray(value, dtype=float)
    steps = n - 1
    crashed = bool(metrics["crashed"][-1] > 0.5)
    applied = np.zeros((steps, 2))
    return Episode(
        seed=0,
        steps=steps,
        dt=DT,
        terminated=crashed,
        truncated=not crashed,
        actions=applied,
        agent_actions=applied,
        expert_actions=None,
        applied=applied,
        rewards=np.zeros(steps),
        metrics=metrics,
        latency_ms=np.zeros(steps),
    )


def _crash_at(n: int, k: int) -> np.ndarray:
    crashed = np.zeros(n)
    crashed[k:] = 1.0
    return crashed


def _weighted(**sub: float) -> float:
    """The weighted mean with the given sub-scores and every other one at 1."""
    return sum(w * sub.get(k, 1.0) for k, w in WEIGHTS.items()) / sum(WEIGHTS.values())


def test_perfect_driving_scores_one():
    result = episode_score(make_episode(np.full(101, LIMIT)))
    assert result.score == pytest.approx(1.0)
    for name in SUB_SCORES:
        assert getattr(result, name) == pytest.approx(1.0), name
    assert result.penalty_collision == result.penalty_drivable == result.penalty_direction == 1.0


def test_to_row_gives_the_flat_columns_and_metrics_lists_them():
    row = episode_score(make_episode(np.full(11, LIMIT))).to_row()
    expected = {
        "score",
        "score_progress",
        "score_ttc",
        "score_speed_limit",
        "score_comfort",
        "score_lane_keeping",
        "penalty_collision",
        "penalty_drivable",
        "penalty_direction",
    }
    assert set(row) == expected
    assert expected <= set(METRICS)
    assert expected <= set(episode_metrics(make_episode(np.full(11, LIMIT))))


def test_a_crawl_lowers_progress_in_proportion():
    result = episode_score(make_episode(np.full(101, 6.0)))
    assert result.progress == pytest.approx(6.0 / LIMIT)
    assert result.score == pytest.approx(_weighted(progress=6.0 / LIMIT))
    assert result.comfort == 1.0 and result.penalty_collision == 1.0


def test_at_fault_crash_into_the_car_ahead_zeroes_the_score():
    n = 51
    gap = np.full(n, 10.0)
    gap[-1] = 0.0
    episode = make_episode(np.full(n, LIMIT), crashed=_crash_at(n, n - 1), gap_front=gap)
    result = episode_score(episode)
    assert result.penalty_collision == 0.0
    assert result.score == 0.0
    assert result.progress == pytest.approx(1.0)  # the sub-scores are still reported


@pytest.mark.parametrize(
    ("case", "at_fault"),
    [
        ("rear-ended", False),
        ("stopped", False),
        ("side, inside its lane", False),
        ("side, across the marking", True),
        ("side, off the road", True),
    ],
)
def test_the_fault_rule_for_other_collisions(case, at_fault):
    n = 51
    speed = np.full(n, 20.0)
    extra = {"crashed": _crash_at(n, n - 1)}
    if case == "rear-ended":
        gap_rear = np.full(n, 5.0)
        gap_rear[-1] = 0.0
        extra["gap_rear"] = gap_rear
    elif case == "stopped":
        speed[:] = 0.0
        extra["gap_front"] = np.zeros(n)  # even with a car touching ahead
    elif case == "side, across the marking":
        extra["lane_offset"] = np.linspace(0.0, 1.5, n)
    elif case == "side, off the road":
        on_road = np.ones(n)
        on_road[-1] = 0.0
        extra["on_road"] = on_road
    result = episode_score(make_episode(speed, **extra))
    assert result.penalty_collision == (0.0 if at_fault else 1.0)
    if not at_fault and case != "stopped":
        assert result.score > 0.5


def test_leaving_the_road_zeroes_the_score():
    n = 51
    on_road = np.ones(n)
    on_road[20:23] = 0.0
    result = episode_score(make_episode(np.full(n, LIMIT), on_road=on_road))
    assert result.penalty_drivable == 0.0 and result.score == 0.0


def test_a_hard_brake_lowers_comfort():
    speed = np.concatenate([np.full(40, 25.0), 25.0 - 5.0 * DT * np.arange(1, 11), np.full(40, 15)])
    smooth = episode_score(make_episode(np.full(90, 25.0)))
    braking = episode_score(make_episode(speed))
    assert smooth.comfort == 1.0
    assert 0.0 < braking.comfort < 1.0
    assert braking.score < smooth.score
    assert braking.ttc == braking.lane_keeping == braking.speed_limit == 1.0


def test_jerky_speed_changes_lower_comfort():
    # +2.3 and -4.0 m/s² in turn, 1.6 s each: inside the acceleration bounds, but the switches
    # exceed the longitudinal jerk bound even through the smoothing filter
    accel = np.where((np.arange(120) // 8) % 2 == 0, 2.3, -4.0)
    speed = 25.0 + np.concatenate([[0.0], np.cumsum(accel * DT)])
    steady = 25.0 + np.concatenate([[0.0], np.cumsum(np.full(120, accel.mean()) * DT)])
    assert episode_score(make_episode(steady)).comfort == 1.0
    assert episode_score(make_episode(speed)).comfort < 0.95


def test_weaving_breaks_the_lateral_acceleration_bound():
    t = np.arange(101) * DT
    heading = 0.3 * np.sin(2 * math.pi * 0.2 * t)  # at 20 m/s: up to 7.5 m/s² sideways
    assert episode_score(make_episode(np.full(101, 20.0), heading=heading)).comfort < 0.7


def test_speeding_costs_as_nuplan_says():
    result = episode_score(make_episode(np.full(51, LIMIT + 1.0)))
    assert result.speed_limit == pytest.approx(1.0 - 1.0 / MAX_OVERSPEED_MPS)
    assert result.progress == 1.0  # capped
    no_limit = episode_score(make_episode(np.full(51, 50.0), speed_limit=np.full(51, math.nan)))
    assert no_limit.speed_limit == 1.0 and no_limit.progress == pytest.approx(1.0)


def test_lane_offset_and_close_following_lower_their_sub_scores():
    n = 101
    offset = episode_score(make_episode(np.full(n, LIMIT), lane_offset=np.full(n, 0.3)))
    assert offset.lane_keeping == pytest.approx(0.7)
    assert offset.score == pytest.approx(_weighted(lane_keeping=0.7))
    ttc = np.full(n, math.inf)
    ttc[1:51] = 0.5  # 50 of the 100 decisions end too close
    close = episode_score(make_episode(np.full(n, LIMIT), ttc_front=ttc))
    assert close.ttc == pytest.approx(0.5)


def _lane_change(away_steps: int, crosses: bool = True) -> dict[str, np.ndarray]:
    """Offsets [m] of a change to the next lane spending ``away_steps`` beyond 0.5 m of a centre
    (the offset flips sign where the car crosses the marking); ``crosses=False`` keeps the lane
    index, as for a swerve out and back that never reaches the next lane."""
    half = away_steps // 2
    offset = np.concatenate(
        [
            np.zeros(10),
            np.linspace(0.6, 1.9, half),
            np.linspace(-1.9, -0.6, away_steps - half),
            np.zeros(30),
        ]
    )
    lane = np.zeros(len(offset))
    if crosses:
        lane[10 + half :] = 1.0
    return {"lane_offset": offset, "lane": lane}


def test_a_quick_lane_change_costs_no_lane_keeping_a_slow_one_does():
    quick = _lane_change(6)  # 1.2 s away from a lane centre
    n = len(quick["lane"])
    assert episode_score(make_episode(np.full(n, LIMIT), **quick)).lane_keeping == 1.0
    swerve = episode_score(make_episode(np.full(n, LIMIT), **_lane_change(6, crosses=False)))
    assert swerve.lane_keeping < 0.9
    slow = _lane_change(15)  # 3 s away
    n = len(slow["lane"])
    assert episode_score(make_episode(np.full(n, LIMIT), **slow)).lane_keeping < 0.8


@pytest.mark.parametrize(("back_steps", "penalty"), [(2, 1.0), (3, 0.5), (10, 0.0)])
def test_driving_against_the_lane_is_penalised_as_nuplan_does(back_steps, penalty):
    # 2 m per step, turned round (heading pi) for ``back_steps`` steps: the worst 1 s window
    # (5 steps) nets 2 m forwards (1), 2 m back (not below 2 m: 0.5), 10 m back (0)
    speed = np.full(61, 10.0)
    heading = np.zeros(61)
    heading[20 : 20 + back_steps] = math.pi
    result = episode_score(make_episode(speed, heading=heading))
    assert result.penalty_direction == penalty


def test_the_score_stays_in_zero_one():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 80))
        crash_at = int(rng.integers(1, n))
        episode = make_episode(
            rng.uniform(-5, 45, n),
            heading=rng.uniform(-math.pi, math.pi, n) * rng.integers(0, 2),
            lane_offset=rng.normal(0, 1.5, n),
            on_road=(rng.random(n) > 0.05).astype(float),
            crashed=_crash_at(n, crash_at) if rng.random() < 0.3 else np.zeros(n),
            gap_front=rng.choice([0.0, 3.0, math.inf], n),
            gap_rear=rng.choice([0.0, 3.0, math.inf], n),
            ttc_front=rng.choice([0.2, 2.0, math.inf], n),
            speed_limit=rng.choice([20.0, 30.0, math.nan], n),
        )
        result = episode_score(episode)
        for name, value in vars(result).items():
            assert 0.0 <= value <= 1.0, (name, value)


def test_a_real_modular_oracle_episode_scores_in_zero_one():
    scenario = get_scenario("highway").with_overrides({"vehicles_count": 12, "duration": 4})
    (episode,) = rollout(make_agent("modular-oracle", scenario), scenario, [1_000_000])
    assert np.all(episode.metrics["speed_limit"] == 30.0)
    result = episode_score(episode)
    assert isinstance(result, DrivingScore)
    assert 0.0 < result.score <= 1.0
    assert result.penalty_collision == result.penalty_drivable == result.penalty_direction == 1.0
    assert 0.5 < result.progress <= 1.0
