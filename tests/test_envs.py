"""Environment contract: every scenario is a well-behaved gymnasium env with pixel observations."""

from __future__ import annotations

import itertools

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs.errors import UserError
from envs.scenarios import SCENARIOS, SeedRange, get_scenario
from envs.scene import PREDICTION_TIMES_S

TINY_BY_SCENARIO = {
    "highway": {"vehicles_count": 8, "duration": 3},
    "highway-dense": {"vehicles_count": 12, "duration": 3},
    "racetrack": {"other_vehicles": 1, "duration": 3},
    "merge": {"duration": 3},
    "roundabout": {"vehicles_count": 2, "duration": 3},
    "exit": {"vehicles_count": 4, "duration": 3},
}


def test_every_registered_scenario_has_tiny_settings_here():
    assert set(TINY_BY_SCENARIO) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_full_tiny_episode_with_random_actions(name):
    env = envs.make(name, overrides=TINY_BY_SCENARIO[name])
    obs, info = env.reset(seed=3)
    assert obs.shape == env.observation_space.shape == env.scenario.observation.shape
    assert obs.dtype == np.uint8
    env.action_space.seed(3)
    steps, done = 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert env.observation_space.contains(obs)
        assert obs[-1].std() > 5, "the newest frame is blank"
        assert np.isfinite(reward)
        assert {"scene", "metrics", "applied_action", "time"} <= set(info)
        assert set(info["metrics"]) >= {
            "speed",
            "lane_offset",
            "heading_error",
            "on_road",
            "crashed",
        }
        done = terminated or truncated
    assert steps <= env.scenario.steps_per_episode
    if truncated:
        assert steps == env.scenario.steps_per_episode
    env.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_gymnasium_check_env(name):
    env = gymnasium.make(envs.gym_id(name), overrides=TINY_BY_SCENARIO[name])
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_gymnasium_make_by_id_uses_the_scenario():
    env = gymnasium.make("driving/HighwayDense-v0", overrides={"duration": 2})
    assert env.unwrapped.scenario.name == "highway-dense"
    assert env.unwrapped.scenario.config["vehicles_count"] == 80
    env.close()


@pytest.mark.parametrize("name", ["highway", "racetrack"])
def test_same_seed_same_actions_same_episode(name):
    def run() -> tuple[list[np.ndarray], list[dict]]:
        env = envs.make(name, overrides=TINY_BY_SCENARIO[name])
        obs, info = env.reset(seed=11)
        rng = np.random.default_rng(0)
        frames, metrics = [obs], [info["metrics"]]
        for _ in range(8):
            obs, _, term, trunc, info = env.step(rng.uniform(-0.3, 0.3, env.action_space.shape))
            frames.append(obs)
            metrics.append(info["metrics"])
            if term or trunc:
                break
        env.close()
        return frames, metrics

    frames_a, metrics_a = run()
    frames_b, metrics_b = run()
    assert len(frames_a) == len(frames_b)
    for a, b in zip(frames_a, frames_b, strict=True):
        np.testing.assert_array_equal(a, b)
    assert metrics_a == metrics_b


def test_different_seeds_give_different_traffic():
    env = envs.make("highway", overrides=TINY_BY_SCENARIO["highway"])
    positions = []
    for seed in (1, 2):
        _, info = env.reset(seed=seed)
        positions.append(np.array([v.position for v in info["scene"].vehicles]))
    assert positions[0].shape != positions[1].shape or not np.allclose(*positions)


def test_seed_ranges_are_disjoint_for_every_scenario():
    for scenario in SCENARIOS.values():
        ranges = [scenario.train_seeds, scenario.validation_seeds, scenario.evaluation_seeds]
        for a, b in itertools.combinations(ranges, 2):
            assert not a.overlaps(b)
            assert a.start not in b and b.start not in a


def test_bad_scenario_name_lists_choices():
    with pytest.raises(UserError, match=r"unknown scenario 'higway'.*did you mean 'highway'"):
        envs.make("higway")
    with pytest.raises(UserError) as err:
        get_scenario("nowhere")
    for name in SCENARIOS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lanes_count": "four"}, "lanes_count"),
        ({"lanes_count": 0}, "lanes_count"),
        ({"vehicles_count": -3}, "vehicles_count"),
        ({"no_such_key": 1}, "valid choices"),
        ({"duration": 0}, "duration"),
        ({"observation": {"kind": "depth"}}, "gray"),
        ({"observation": {"width": 8}}, "observation.width"),
        ({"observation": {"colour": "red"}}, "valid keys"),
        ({"action": {"mode": "brake"}}, "accel_steer"),
        ({"policy_frequency": 4}, "multiple"),
    ],
)
def test_bad_config_values_are_clear_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        envs.make("highway", overrides=overrides)


def test_overrides_take_effect_at_construction_and_are_recorded():
    env = envs.make("highway", overrides={"lanes_count": 2, "vehicles_count": 5, "duration": 2})
    _, info = env.reset(seed=0)
    assert len(info["scene"].lanes) == 2
    record = env.scenario.to_dict()
    assert record["overrides"] == {"lanes_count": 2, "vehicles_count": 5, "duration": 2}
    assert record["config"]["lanes_count"] == 2
    rebuilt = envs.Scenario.from_record(record)
    assert rebuilt == env.scenario
    env.close()


def test_rgb_and_custom_size_observation():
    env = envs.make(
        "highway",
        overrides={
            **TINY_BY_SCENARIO["highway"],
            "observation": {"kind": "rgb", "width": 96, "height": 48, "stack": 2},
        },
    )
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 48, 96) == env.observation_space.shape
    obs, *_ = env.step(np.zeros(2, dtype=np.float32))
    colour = obs[3:6].astype(int)
    assert colour.std() > 5
    assert np.abs(colour[0] - colour[1]).max() > 0, "RGB channels should differ somewhere"
    env.close()


def test_steer_only_mode_holds_the_cruise_speed():
    env = envs.make("racetrack", overrides={"duration": 4, "other_vehicles": 0})
    assert env.action_space.shape == (1,)
    _, info = env.reset(seed=0)
    cruise = env.scenario.action.cruise_speed
    for _ in range(10):
        _, _, term, trunc, info = env.step(np.array([info["idm_action"][1]], dtype=np.float32))
        if term or trunc:
            break
    assert abs(info["metrics"]["speed"] - cruise) < 0.5


def test_scene_ground_truth_is_consistent_with_metrics():
    env = envs.make("highway", overrides=TINY_BY_SCENARIO["highway"])
    _, info = env.reset(seed=5)
    scene, metrics = info["scene"], info["metrics"]
    assert scene.ego.position[0] == pytest.approx(metrics["x"])
    assert scene.ego_lane == int(metrics["lane"])
    lane = scene.lanes[scene.ego_lane]
    assert lane.centerline.shape[1] == 2 and len(lane.centerline) > 10
    # the ego car starts on its lane centre, so the centre line passes through it laterally
    assert abs(lane.centerline[2, 1] - scene.ego.position[1]) < 1e-6
    distances = [np.linalg.norm(v.position - scene.ego.position) for v in scene.vehicles]
    assert distances == sorted(distances)
    env.close()


def test_seed_range_parsing():
    assert SeedRange.parse("5:9") == SeedRange(5, 9)
    assert len(SeedRange.parse("7")) == 1
    for bad in ("9:5", "a:b", "1:2:3", "-1:4", ""):
        with pytest.raises(UserError):
            SeedRange.parse(bad)


@pytest.mark.parametrize("name", ["roundabout", "exit"])
def test_route_scenarios_report_the_goal_and_predict_the_traffic(name):
    env = envs.make(name, overrides=TINY_BY_SCENARIO[name])
    _, info = env.reset(seed=0)
    assert info["metrics"]["goal"] == 0.0
    assert info["scene"].vehicles
    for vehicle in info["scene"].vehicles:
        assert vehicle.predicted.shape == (len(PREDICTION_TIMES_S), 2)
        np.testing.assert_allclose(vehicle.predicted[0], vehicle.position, atol=1e-6)
    env.close()
    # roads without junctions carry neither (their metric keys stay as they were)
    env = envs.make("highway", overrides=TINY_BY_SCENARIO["highway"])
    _, info = env.reset(seed=0)
    assert "goal" not in info["metrics"]
    assert all(v.predicted is None for v in info["scene"].vehicles)
    env.close()


def test_route_goal_ends_the_episode_and_counts_as_completed():
    from driving.metrics import episode_metrics
    from driving.rollout import Episode

    def episode(goal: list[float], truncated: bool) -> Episode:
        n = len(goal)
        metrics = {
            "speed": np.full(n, 10.0),
            "lane_offset": np.zeros(n),
            "heading_error": np.zeros(n),
            "on_road": np.ones(n),
            "crashed": np.zeros(n),
            "gap_front": np.full(n, np.inf),
            "ttc_front": np.full(n, np.inf),
            "x": np.arange(n) * 2.0,
            "y": np.zeros(n),
            "lane": np.zeros(n),
            "heading": np.zeros(n),
            "gap_rear": np.full(n, np.inf),
            "speed_limit": np.full(n, 10.0),
            "goal": np.array(goal),
        }
        steps = n - 1
        return Episode(
            seed=0,
            steps=steps,
            dt=0.2,
            terminated=not truncated,
            truncated=truncated,
            actions=np.zeros((steps, 2)),
            agent_actions=np.zeros((steps, 2)),
            expert_actions=None,
            applied=np.zeros((steps, 2)),
            rewards=np.zeros(steps),
            metrics=metrics,
            latency_ms=np.zeros(steps),
        )

    assert episode_metrics(episode([0, 0, 0, 1], truncated=False))["completed"] == 1.0
    # the time limit before the goal is not the end of the route
    assert episode_metrics(episode([0, 0, 0, 0], truncated=True))["completed"] == 0.0
