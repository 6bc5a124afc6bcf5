"""Sameness of the accelerated simulation (``envs.fast``) and the stock highway-env one.

The core check drives the same seeds with the same ego actions through both, on highway-v0 and on
every other covered highway-env id (merge, racetrack, roundabout, exit), and compares, at
every decision step: every car's position (1e-6 m), heading and speed (1e-9), lane, target lane,
crash flag and timer (exact); the reward, ``terminated``/``truncated`` (exact); the observation
(at most a few pixels); ``info["scene"]``, ``info["metrics"]``, ``info["idm_action"]`` and the
state of the road's random generator. On the machines tested the two runs are bit-identical; the
tolerances only leave room for ulp-level differences between numpy SIMD kernels.

The cases beyond highway-env's defaults (parameters set on some cars, ``set_vehicle_field``, a deep
copy mid-episode, other vehicle classes mixed in) compare every car's state bit for bit.
"""

from __future__ import annotations

import collections
import copy
import itertools
import json
import math
from collections.abc import Callable

import numpy as np
import pygame
import pytest
from highway_env.envs.common.graphics import EnvViewer
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.behavior import (
    AggressiveVehicle,
    DefensiveVehicle,
    IDMVehicle,
    LinearVehicle,
)
from highway_env.vehicle.controller import ControlledVehicle, MDPVehicle
from highway_env.vehicle.dynamics import BicycleVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import Landmark, Obstacle

import envs
from driving.commands.bench.sim import main as bench_sim_main
from envs.driving_env import FAST_SIM_DEFAULT, highway_env_class
from envs.fast import is_supported
from envs.fast.collisions import collision_candidates
from envs.fast.drawing import FastGrayscaleObservation, FastLaneViewer, GrayPalette
from envs.fast.road import DRIVE, IDLE, MOVE, OWN, TIMED_MOVE, FastRoad, act_role, step_role
from envs.scenarios import Scenario, get_scenario

BUSY = {"vehicles_count": 25, "vehicles_density": 1.5, "duration": 10}
"""10 s of dense traffic: lane changes, MOBIL decisions and (with a reckless ego) crashes."""
POSITION_ATOL_M = 1e-6
STATE_ATOL = 1e-9
OBS_PIXELS_TOLERATED = 4


def _cars(vehicles: list) -> list[tuple]:
    return [
        (
            np.array(v.position),
            float(v.heading),
            float(v.speed),
            v.lane_index,
            getattr(v, "target_lane_index", None),
            bool(v.crashed),
            getattr(v, "timer", None),
        )
        for v in vehicles
    ]


def _assert_cars_match(stock: list[tuple], fast: list[tuple], step: int) -> None:
    assert len(stock) == len(fast), f"step {step}: vehicle count"
    for k, (a, b) in enumerate(zip(stock, fast, strict=True)):
        where = f"step {step}, vehicle {k}"
        np.testing.assert_allclose(b[0], a[0], rtol=0, atol=POSITION_ATOL_M, err_msg=where)
        assert b[1] == pytest.approx(a[1], rel=0, abs=STATE_ATOL), where
        assert b[2] == pytest.approx(a[2], rel=0, abs=STATE_ATOL), where
        assert b[3:6] == a[3:6], f"{where}: lane, target lane or crash differ"
        if a[6] is not None:
            assert b[6] == pytest.approx(a[6], rel=0, abs=STATE_ATOL), where


def _assert_scenes_match(a, b) -> None:
    assert b.time == a.time and b.ego_lane == a.ego_lane and b.lanes == a.lanes
    assert len(b.vehicles) == len(a.vehicles)
    for x, y in zip([a.ego, *a.vehicles], [b.ego, *b.vehicles], strict=True):
        np.testing.assert_allclose(y.position, x.position, rtol=0, atol=POSITION_ATOL_M)
        assert (y.heading, y.speed) == pytest.approx((x.heading, x.speed), rel=0, abs=STATE_ATOL)
        assert (y.length, y.width, y.lane) == (x.length, x.width, x.lane)


def _assert_metrics_match(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if math.isinf(a[key]):
            assert b[key] == a[key], key
        else:
            assert b[key] == pytest.approx(a[key], rel=1e-9, abs=POSITION_ATOL_M), key


def _run(
    scenario: str | Scenario, overrides: dict, seed: int, fast: bool, policy: str, steps: int
) -> list[dict]:
    """One episode; the ego action comes from the IDM hint (stopping at the episode's end) or,
    ``reckless``, from a seeded generator (driving on after a crash, to see its aftermath)."""
    env = envs.make(scenario, overrides=overrides, fast=fast)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    record = [{"obs": obs, "info": info, "cars": _cars(env.sim.road.vehicles)}]
    for _ in range(steps):
        if policy == "idm":  # steering only: the hint's steering, as the idm baseline does
            action = info["idm_action"][-env.action_space.shape[0] :]
        elif env.action_space.shape == (2,):  # reckless: mostly full throttle, random steering
            action = np.array([rng.uniform(0.2, 1.0), rng.uniform(-0.3, 0.3)], np.float32)
        else:  # reckless, steering only
            action = np.array([rng.uniform(-0.3, 0.3)], np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        cars = _cars(env.sim.road.vehicles)
        record.append(
            {
                "obs": obs,
                "info": info,
                "cars": cars,
                "reward": reward,
                "done": (terminated, truncated),
            }
        )
        if (terminated or truncated) and policy == "idm":
            break
    record[-1]["rng"] = env.sim.road.np_random.bit_generator.state
    record[-1]["road"] = type(env.sim.road)
    env.close()
    return record


def _assert_runs_match(stock: list[dict], fast: list[dict]) -> None:
    """Every step of two :func:`_run` records: cars, reward, done, pixels, ``info``, RNG."""
    assert fast[-1]["road"] is FastRoad and stock[-1]["road"] is Road
    assert len(fast) == len(stock)
    for step, (a, b) in enumerate(zip(stock, fast, strict=True)):
        _assert_cars_match(a["cars"], b["cars"], step)
        assert b.get("reward") == a.get("reward") and b.get("done") == a.get("done"), step
        assert np.count_nonzero(a["obs"] != b["obs"]) <= OBS_PIXELS_TOLERATED, step
        _assert_scenes_match(a["info"]["scene"], b["info"]["scene"])
        _assert_metrics_match(a["info"]["metrics"], b["info"]["metrics"])
        np.testing.assert_allclose(b["info"]["idm_action"], a["info"]["idm_action"], atol=1e-6)
    assert fast[-1]["rng"] == stock[-1]["rng"], "random state consumed differently"


@pytest.mark.parametrize(("seed", "policy"), [(3, "idm"), (10, "reckless"), (12, "reckless")])
def test_fast_matches_stock_step_by_step(seed: int, policy: str) -> None:
    steps = 50 if policy == "idm" else 25
    stock = _run("highway", BUSY, seed, False, policy, steps)
    fast = _run("highway", BUSY, seed, True, policy, steps)
    _assert_runs_match(stock, fast)
    changing = any(car[3] != car[4] for record in stock for car in record["cars"])
    assert changing, "the episode should exercise MOBIL lane changes"
    if policy == "reckless":
        assert any(car[5] for car in stock[-1]["cars"]), "the episode should contain a crash"


def _raw(env_id: str, config: dict, duration: float) -> Scenario:
    """A scenario on highway-env's own defaults for ``env_id`` (plus ``config``), with the
    project's pixel observation and continuous actions."""
    return Scenario(
        name=env_id, env_id=env_id, description="test", config=config, duration=duration
    )


CURVED_CASES = {
    "merge": ("merge", {"duration": 8}),
    "racetrack": ("racetrack", {"duration": 6}),
    "roundabout": ("roundabout", {"duration": 8}),
    "exit": ("exit", {"duration": 6}),
    "roundabout-v0": (_raw("roundabout-v0", {}, 8), {}),
    "exit-v0": (_raw("exit-v0", {"vehicles_count": 15}, 6), {}),
}
"""The other highway-env ids the fast path covers (the registered scenarios, and roundabout-v0
and exit-v0 on highway-env's own configs), each with short episodes: ``(scenario,
overrides)``."""


@pytest.mark.parametrize("policy", ["idm", "reckless"])
@pytest.mark.parametrize("case", sorted(CURVED_CASES))
def test_fast_matches_stock_step_by_step_on_every_covered_road(case: str, policy: str) -> None:
    """A ramp on a sine lane (merge), circular lanes (racetrack), planned routes through a
    roundabout, a lane that ends at an exit: every step the same."""
    scenario, overrides = CURVED_CASES[case]
    assert is_supported(get_scenario(scenario).env_id)
    steps = 40 if policy == "idm" else 20
    stock = _run(scenario, overrides, 1, False, policy, steps)
    fast = _run(scenario, overrides, 1, True, policy, steps)
    _assert_runs_match(stock, fast)
    lanes = {car[3] for record in stock for car in record["cars"]}
    assert len(lanes) > 2, "the traffic should drive over several lanes"


def _hand_placed_road(fast: bool) -> Road:
    """Cars, ties, an obstacle and a landmark on a 3-lane road, in a deliberately tricky order."""
    road = Road(network=RoadNetwork.straight_road_network(3), np_random=np.random.default_rng(0))
    for x, y in [
        (50, 0),
        (50, 0),
        (30, 4),
        (50.0, 4),
        (70, 4.5),
        (70, 3.5),
        (10, 8),
        (90, 6.9),
        (90, 7.1),
        (-4, 0),
        (-6, 4),
        (9999, 8),
        (10004.9, 8),
        (40, -3.1),
        (60, 11),
    ]:
        road.vehicles.append(IDMVehicle(road, [x, y], speed=20))
    road.vehicles.append(Vehicle(road, [50, 4], speed=25))
    road.objects.append(Obstacle(road, [50, 8]))
    road.objects.append(Obstacle(road, [50, 8]))
    road.objects.append(Landmark(road, [80, 0]))
    return FastRoad.adopt(road) if fast else road


def _two_segment_road(fast: bool) -> Road:
    """Traffic about to cross from one road segment to the next (lane ends, ``follow_road``),
    towards an obstacle, with a car of another IDM class and a plain ``Vehicle``."""
    net = RoadNetwork.straight_road_network(3, length=100.0)
    RoadNetwork.straight_road_network(3, start=100.0, length=100.0, nodes_str=("1", "2"), net=net)
    road = Road(network=net, np_random=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for k in range(14):
        kind = LinearVehicle if k == 5 else IDMVehicle
        car = kind(
            road,
            [rng.uniform(40, 99), 4 * rng.integers(0, 3) + rng.uniform(-0.6, 0.6)],
            speed=rng.uniform(15, 30),
        )
        car.randomize_behavior()
        road.vehicles.append(car)
    road.vehicles.insert(3, Vehicle(road, [70, 4], speed=22))
    road.objects.append(Obstacle(road, [150, 4]))
    return FastRoad.adopt(road) if fast else road


def test_fast_road_matches_stock_across_lane_ends_and_obstacles() -> None:
    stock, fast = _two_segment_road(False), _two_segment_road(True)
    dt = 1 / 15
    for step in range(75):
        for road in (stock, fast):
            road.act()
            road.step(dt)
        _assert_cars_match(_cars(stock.vehicles), _cars(fast.vehicles), step)
    assert stock.np_random.bit_generator.state == fast.np_random.bit_generator.state
    assert any(v.lane_index[0] == "1" for v in stock.vehicles), "cars should reach segment 2"
    assert any(v.crashed for v in stock.vehicles), "the obstacle should be hit"


# -- per-vehicle parameters, deep copies, other vehicle classes ----------------------------------
# Whole highway-v0 episodes compared bit for bit (np.array_equal). They observe Kinematics: the
# pixel observations hold a pygame clock, which cannot be deep-copied (stock highway-env's own
# set_vehicle_field fails on them as well).

KEEP_GOING = np.array([0.2, 0.0], dtype=np.float32)
"""The ego action of these episodes: mild throttle, straight on."""


def _kinematics_env(fast: bool, seed: int):
    """A reset highway-v0 env: the ``highway`` scenario's config with :data:`BUSY` traffic."""
    scenario = envs.get_scenario("highway").with_overrides(BUSY)
    config = {**scenario.highway_config(), "observation": {"type": "Kinematics"}}
    env = highway_env_class(scenario.env_id, fast)(config=config)
    env.reset(seed=seed)
    return env


def _state(env) -> tuple[np.ndarray, list[tuple]]:
    """Every vehicle's ``(x, y, heading, speed, MOBIL timer or -1)`` and ``(lane, target lane,
    crashed, class)``."""
    vehicles = env.road.vehicles
    numbers = np.array(
        [[*v.position, v.heading, v.speed, getattr(v, "timer", -1)] for v in vehicles], dtype=float
    )
    labels = [
        (v.lane_index, getattr(v, "target_lane_index", None), v.crashed, type(v)) for v in vehicles
    ]
    return numbers, labels


def _drive(env, decisions: int) -> list[tuple[np.ndarray, list[tuple]]]:
    """The :func:`_state` after each of ``decisions`` steps with the ego action KEEP_GOING."""
    states = []
    for _ in range(decisions):
        env.step(KEEP_GOING)
        states.append(_state(env))
    return states


def _same_numbers(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))


def _assert_identical(stock: list[tuple], fast: list[tuple]) -> None:
    assert len(stock) == len(fast)
    for step, (a, b) in enumerate(zip(stock, fast, strict=True)):
        assert np.array_equal(a[0], b[0]), f"decision {step}: positions, headings or speeds"
        assert a[1] == b[1], f"decision {step}: lanes, crashes or classes"


def _set_on_some_cars(env, name: str, value: float) -> None:
    """``name = value`` on every third car other than the ego (an instance attribute)."""
    for v in [v for v in env.road.vehicles if v is not env.vehicle][::3]:
        setattr(v, name, value)


PARAMETER_CHANGES = [
    ("TIME_WANTED", 0.3),
    ("DISTANCE_WANTED", 2.0),
    ("COMFORT_ACC_MAX", 6.0),
    ("COMFORT_ACC_MIN", -1.5),
    ("DELTA", 1.5),
    ("ACC_MAX", 0.5),
    ("KP_LATERAL", 4.0),
    ("KP_HEADING", 2.0),
    ("MAX_STEERING_ANGLE", 0.02),
    ("LENGTH", 9.0),
    ("POLITENESS", 1.0),
    ("LANE_CHANGE_MIN_ACC_GAIN", 0.0),
    ("LANE_CHANGE_MAX_BRAKING_IMPOSED", 10.0),
    ("LANE_CHANGE_DELAY", 0.2),
    ("target_speed", 35.0),
    ("MAX_SPEED", 22.0),
]
"""Each attribute that the stock ``IDMVehicle.act``/``step`` read from ``self``, with a value
that changes the traffic within a few decisions."""


@pytest.mark.parametrize(("name", "value"), PARAMETER_CHANGES)
def test_per_vehicle_parameters_match_stock(name: str, value: float) -> None:
    """Set on some cars two decisions in (after the road adopted its vehicles)."""
    runs = {}
    for fast, change in ((False, True), (True, True), (True, False)):
        env = _kinematics_env(fast, seed=3)
        states = _drive(env, 2)
        if change:
            _set_on_some_cars(env, name, value)
        runs[fast, change] = states + _drive(env, 8)
        env.close()
    _assert_identical(runs[False, True], runs[True, True])
    assert not _same_numbers(runs[True, True], runs[True, False]), "the change should matter"


def test_class_constant_changes_match_stock(monkeypatch) -> None:
    """highway-env's constants changed on the classes, for every car."""
    monkeypatch.setattr(IDMVehicle, "TIME_WANTED", 0.6)
    monkeypatch.setattr(ControlledVehicle, "KP_LATERAL", 3.0)
    stock, fast = (_drive(_kinematics_env(fast, seed=4), 8) for fast in (False, True))
    _assert_identical(stock, fast)


@pytest.mark.parametrize(("name", "value"), [("TIME_WANTED", 0.3), ("KP_LATERAL", 4.0)])
def test_set_vehicle_field_matches_stock(name: str, value: float) -> None:
    """highway-env's own preprocessor: a deep copy of the env with the field set on every car
    other than the ego."""
    runs = {}
    for fast in (False, True):
        env = _kinematics_env(fast, seed=3)
        _drive(env, 2)
        changed = env.set_vehicle_field((name, value))
        assert type(changed.road) is (FastRoad if fast else Road)
        runs[fast] = _drive(changed, 8)
    _assert_identical(runs[False], runs[True])


def _counting(method: Callable, name: str, calls: collections.Counter) -> Callable:
    def counted(*args, **kwargs):
        calls[name] += 1
        return method(*args, **kwargs)

    return counted


STOCK_TRAFFIC_METHODS = (
    (IDMVehicle, "acceleration"),
    (ControlledVehicle, "steering_control"),
    (Vehicle, "on_state_update"),
)
"""The stock methods that the vectorised path replaces for IDMVehicle traffic."""


def test_deep_copy_mid_episode_matches_stock_and_stays_fast(monkeypatch) -> None:
    """The copy of a fast env continues the episode exactly as the original and as a copy of a
    stock env, without calling the stock traffic methods (so on the vectorised path)."""
    calls: collections.Counter = collections.Counter()
    for kind, name in STOCK_TRAFFIC_METHODS:
        monkeypatch.setattr(kind, name, _counting(getattr(kind, name), name, calls))
    runs = {}
    for fast in (False, True):
        env = _kinematics_env(fast, seed=5)
        _drive(env, 3)
        twin = copy.deepcopy(env)
        assert type(twin.road) is (FastRoad if fast else Road)
        calls.clear()
        runs[fast, "copy"] = _drive(twin, 7)
        runs[fast, "calls"] = dict(calls)
        runs[fast, "original"] = _drive(env, 7)
    _assert_identical(runs[False, "copy"], runs[True, "copy"])
    _assert_identical(runs[True, "original"], runs[True, "copy"])
    assert all(runs[False, "calls"].get(name) for _, name in STOCK_TRAFFIC_METHODS)
    assert runs[True, "calls"] == {}, "the copy fell back to the stock methods"


class _PatientIDM(IDMVehicle):
    """Only constants differ from IDMVehicle's: driven on the vectorised path, with its own."""

    TIME_WANTED = 2.5
    COMFORT_ACC_MAX = 2.0
    LANE_CHANGE_DELAY = 0.5


class _HesitantIDM(IDMVehicle):
    """Overrides ``acceleration``, so it must act through its own methods."""

    def acceleration(self, ego_vehicle, front_vehicle=None, rear_vehicle=None) -> float:
        return 0.5 * super().acceleration(ego_vehicle, front_vehicle, rear_vehicle)


MIXED_CLASSES = {
    AggressiveVehicle: (OWN, TIMED_MOVE),
    DefensiveVehicle: (OWN, TIMED_MOVE),
    LinearVehicle: (OWN, TIMED_MOVE),
    _PatientIDM: (DRIVE, TIMED_MOVE),
    _HesitantIDM: (OWN, TIMED_MOVE),
    MDPVehicle: (OWN, MOVE),
    BicycleVehicle: (IDLE, OWN),
}
"""Classes mixed into the IDMVehicle traffic, with how the fast road acts and steps them."""


def _mix_classes(env) -> None:
    """Every other car but the ego becomes, in turn, a car of each :data:`MIXED_CLASSES` class
    in the same state, its behaviour randomised as highway-env randomises its traffic."""
    road = env.road
    others = [k for k, v in enumerate(road.vehicles) if v is not env.vehicle][::2]
    for kind, k in zip(itertools.cycle(MIXED_CLASSES), others, strict=False):
        car = kind.create_from(road.vehicles[k])
        if isinstance(car, IDMVehicle):
            car.randomize_behavior()
        road.vehicles[k] = car


def test_mixed_vehicle_classes_match_stock() -> None:
    assert {kind: (act_role(kind), step_role(kind)) for kind in MIXED_CLASSES} == MIXED_CLASSES
    runs = {}
    for fast in (False, True):
        env = _kinematics_env(fast, seed=6)
        _drive(env, 1)
        _mix_classes(env)
        runs[fast] = _drive(env, 9)
    _assert_identical(runs[False], runs[True])
    assert {row[3] for row in runs[True][-1][1]} >= set(MIXED_CLASSES)


def test_neighbour_search_matches_stock_semantics() -> None:
    """Ties, the querying car itself, obstacles, landmarks, the on-lane margin, lane ends."""
    road = _hand_placed_road(fast=True)
    lanes = list(road.table.by_index)
    for vehicle in [*road.vehicles, *road.objects]:
        for lane in [None, *lanes]:
            if lane is None and not vehicle.lane_index:
                continue
            expected = Road.neighbour_vehicles(road, vehicle, lane)
            got = road.neighbour_vehicles(vehicle, lane)
            assert got[0] is expected[0] and got[1] is expected[1], (vehicle, lane)


def test_neighbour_index_follows_changes_of_the_vehicle_list() -> None:
    road = _hand_placed_road(fast=True)
    ego = road.vehicles[2]
    front_before, _ = road.neighbour_vehicles(ego)
    stand_in = IDMVehicle(road, front_before.position.copy(), speed=1)
    road.vehicles[road.vehicles.index(front_before)] = stand_in  # as envs.idm_hint does
    assert road.neighbour_vehicles(ego)[0] is stand_in
    road.vehicles.remove(stand_in)
    assert road.neighbour_vehicles(ego) == Road.neighbour_vehicles(road, ego)


def test_skipped_collision_pairs_are_those_stock_finds_clear() -> None:
    """Random close encounters (side by side, nose to tail, at angles, an obstacle): every pair
    the fast path skips is one where the stock separating-axis test finds neither contact nor
    imminent contact; and the pairs it keeps include the real contacts."""
    rng = np.random.default_rng(0)
    road = Road(network=RoadNetwork.straight_road_network(3), np_random=rng)
    dt, kept, touching = 1 / 15, 0, 0
    for _ in range(300):
        things = []
        for _ in range(4):
            v = Vehicle(
                road,
                [100 + rng.uniform(-7, 7), 4 + rng.uniform(-4, 4)],
                heading=rng.uniform(-0.4, 0.4),
                speed=rng.uniform(0, 35),
            )
            things.append(v)
        things.append(Obstacle(road, [100 + rng.uniform(-7, 7), 4 + rng.uniform(-4, 4)]))
        candidates = set(collision_candidates(things, 4, dt))
        for i in range(4):
            for j in range(i + 1, len(things)):
                intersecting, will_intersect, _ = things[i]._is_colliding(things[j], dt)
                touching += intersecting or will_intersect
                if (i, j) in candidates:
                    kept += 1
                else:
                    assert not (intersecting or will_intersect), (i, j)
    assert touching > 100 and kept < 1500


@pytest.mark.parametrize("scenario", ["highway", "highway-dense"])
def test_fast_observation_drawing_is_pixel_identical(scenario: str) -> None:
    """The observation viewer's frames equal the stock viewer's exactly, with the ego moved along
    the whole road (stripes clipped at both lane ends, negative pixel coordinates) and the other
    cars scattered around the frame's edges and the 50 px visibility margin."""
    env = envs.make(scenario, overrides={"vehicles_count": 6, "duration": 1}, fast=True)
    env.reset(seed=0)
    viewer = env.sim.observation_type.viewer
    assert isinstance(viewer, FastLaneViewer)
    stock = EnvViewer(env.sim, config=viewer.config)
    rng = np.random.default_rng(0)
    ego, others = env.sim.vehicle, [v for v in env.sim.road.vehicles if v is not env.sim.vehicle]
    for x in (-40.0, -3.3, 0.0, 2.2, 151.7, 4321.09, 9990.0, 10003.5, 10100.0):
        for y in (-2.0, 5.9, 13.1):
            ego.position[:] = (x, y)
            for other in others:
                other.position[:] = (
                    x + rng.choice([-1, 1]) * rng.uniform(20, 50),
                    y + rng.uniform(-30, 30),
                )
            for v in (viewer, stock):
                v.observer_vehicle = ego
                v.display()
            np.testing.assert_array_equal(viewer.get_image(), stock.get_image(), err_msg=str(x))
    env.close()


@pytest.mark.parametrize("case", sorted(CURVED_CASES))
def test_fast_drawing_of_curved_roads_is_pixel_identical(case: str) -> None:
    """With the ego placed along every lane (sine, circular and sloped straight lanes, their
    ends, headings across the lane), the frames equal the stock viewer's exactly."""
    scenario, overrides = CURVED_CASES[case]
    env = envs.make(scenario, overrides={**overrides, "duration": 1}, fast=True)
    env.reset(seed=0)
    viewer = env.sim.observation_type.viewer
    assert isinstance(viewer, FastLaneViewer)
    stock = EnvViewer(env.sim, config=viewer.config)
    ego = env.sim.vehicle
    for lane in env.sim.road.geometry.lanes:
        for s, lat, heading in ((0.0, 0.0, 0.0), (lane.length / 2, 1.3, 1.0), (lane.length, -2, 3)):
            ego.position[:] = lane.lane.position(s, lat)
            ego.heading = heading
            for v in (viewer, stock):
                v.observer_vehicle = ego
                v.display()
            np.testing.assert_array_equal(viewer.get_image(), stock.get_image(), str(lane.index))
    env.close()


def test_gray_palette_matches_the_stock_conversion() -> None:
    """Frames of random colours (and of few colours, as observations are) convert to the stock
    gray levels exactly, and a covered scenario's observation uses the palette. (All 2^24
    colours were checked once against the stock expression on 1024 x 1024 frames: equal.)"""
    weights = [0.2989, 0.5870, 0.1140]
    palette = GrayPalette(tuple(weights))
    rng = np.random.default_rng(0)
    for k in range(6):
        rgb = rng.integers(0, 256, (160, 64, 3), dtype=np.uint8)
        if k % 2:
            rgb[:] = rgb[rng.integers(0, 160, 160), :1]
        surface = pygame.Surface((160, 64))
        pygame.surfarray.blit_array(surface, rgb)
        stock = np.moveaxis(np.moveaxis(pygame.surfarray.array3d(surface), 0, 1), 0, 1)
        expected = np.dot(stock[..., :3], weights).clip(0, 255).astype(np.uint8)
        np.testing.assert_array_equal(palette.convert(pygame.surfarray.array2d(surface)), expected)
    env = envs.make("merge", fast=True)
    env.reset(seed=0)
    assert isinstance(env.sim.observation_type, FastGrayscaleObservation)
    env.close()


def test_uncovered_scenarios_fall_back_to_stock(monkeypatch) -> None:
    """intersection-v0 runs on a RegulatedRoad (right of way), which the fast path leaves."""
    # highway-env's IntersectionEnv._make_vehicles sets three IDMVehicle class constants for
    # the whole process (intersection_env.py, "Low jam distance"): put them back afterwards, or
    # every later episode in this process drives differently.
    for name in ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN"):
        monkeypatch.setattr(IDMVehicle, name, getattr(IDMVehicle, name))
    assert is_supported("merge-v0") and not is_supported("intersection-v0")
    env = envs.make(_raw("intersection-v0", {}, 1), fast=True)
    env.reset(seed=0)
    assert type(env.sim.road).__name__ == "RegulatedRoad"
    assert type(env.sim.observation_type.viewer) is EnvViewer
    env.close()


def test_fast_simulation_is_the_default() -> None:
    assert FAST_SIM_DEFAULT
    env = envs.make("highway", overrides={"vehicles_count": 3, "duration": 1})
    env.reset(seed=0)
    assert env.fast and isinstance(env.sim.road, FastRoad)
    env.close()


def test_bench_sim_writes_figures(tmp_path, capsys) -> None:
    out = tmp_path / "sim.json"
    assert (
        bench_sim_main(["--steps", "3", "--scenarios", "highway", "merge", "--json", str(out)]) == 0
    )
    figures = json.loads(out.read_text())
    for name in ("highway", "merge"):
        assert figures[name]["fast_path"] == "covered"
        for side in ("stock", "fast"):
            assert figures[name][side]["policy_steps_per_s"] > 0
        assert figures[name]["speedup"] > 0
    assert "merge" in capsys.readouterr().out
