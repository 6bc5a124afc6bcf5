"""The modular agent: each stage on hand-built inputs, then whole tiny episodes and the CLI."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

import envs
from agents.modular import make_oracle_agent, make_vision_agent, settings_for
from agents.modular.control import ControlGains, Controller
from agents.modular.perception import (
    Detection,
    LaneEstimate,
    OraclePerception,
    Percept,
    project,
    project_points,
)
from agents.modular.planning import Planner, PlannerConfig, PlannerState, _Lane, _Occupant
from agents.modular.vision import (
    MARKING_LEVEL,
    VEHICLE_LEVELS,
    VisionPerception,
    headlights_drawn,
)
from driving.perception import in_view
from driving.rollout import rollout
from envs.errors import UserError
from envs.scenarios import get_scenario
from tests.support import TINY, assert_one_line_error

EXPLAIN_KEYS = {
    "detections",
    "decision",
    "target_speed",
    "reference_path",
    "controller",
    "lane",
    "target_lane",
}


def straight_lanes(ego_lane: int, count: int = 4, width: float = 4.0) -> list[LaneEstimate]:
    """``count`` straight lanes in the ego frame, the ego car centred in ``ego_lane``."""
    xs = np.arange(-10.0, 80.1, 5.0)
    return [
        LaneEstimate(i, width, np.stack([xs, np.full_like(xs, (i - ego_lane) * width)], axis=1))
        for i in range(count)
    ]


def plan(detections: list[Detection], speed: float = 25.0, ego_lane: int = 1):
    planner = Planner(PlannerConfig(), dt=0.2)
    percept = Percept(detections, straight_lanes(ego_lane), ego_lane, speed)
    return planner.plan(percept, PlannerState())


# -- planning ---------------------------------------------------------------------------------
def test_a_slower_car_ahead_slows_the_car_down():
    free = plan([])
    assert free.accel > 0 and free.decision == "keep lane" and math.isinf(free.leader_gap)
    # slow cars ahead in both neighbouring lanes too, so that braking (not passing) is the answer
    blocked = [Detection(15.0, y, vx=15.0) for y in (-4.0, 0.0, 4.0)]
    follow = plan(blocked)
    assert follow.accel < -2.0
    assert follow.leader_gap == pytest.approx(10.0)
    assert follow.leader_speed == pytest.approx(15.0)


def test_a_blocked_lane_is_not_chosen_for_a_lane_change():
    slow_ahead = Detection(12.0, 0.0, vx=15.0)
    alongside_left, alongside_right = Detection(0.5, -4.0, vx=25.0), Detection(-1.0, 4.0, vx=25.0)
    assert plan([slow_ahead, alongside_left]).decision == "change right"
    assert plan([slow_ahead, alongside_right]).decision == "change left"
    stuck = plan([slow_ahead, alongside_left, alongside_right])
    assert stuck.decision == "keep lane"
    assert stuck.incentives == {"left": -math.inf, "right": -math.inf}


def test_without_brakes_the_car_dodges_a_slower_car():
    planner = Planner(PlannerConfig(can_brake=False, cruise_speed=10.0), dt=0.2)
    slow_ahead = Detection(10.0, 0.0, vx=6.0)  # 5 m gap closing at 4 m/s: 1.25 s
    p = planner.plan(Percept([slow_ahead], straight_lanes(1, count=2), 1, 10.0), PlannerState())
    assert p.decision == "change left" and p.target_lane == 0


def test_without_brakes_the_car_does_not_dodge_into_a_car_alongside_on_a_curve():
    # a car 0.5 m behind the ego's centre in the left lane, whose projection onto that lane's
    # curved centre line puts it 0.7 m ahead (bumper gap -4.3 m, as on racetrack seed 100007):
    # it is alongside, so the dodge keeps to its lane
    lanes = straight_lanes(1, count=2)
    beside = Detection(-0.5, -4.0, vx=6.6)
    left = _Lane(lanes[0], 0.0, 4.0, [_Occupant(-4.3, beside, 0, True, 0.7, 6.6)])
    assert left.time_to_collision(10.0) == 0.0
    # a slower car in the lane now counts, even where its extrapolation leaves the lane
    slow = Detection(15.0, -4.0, vx=5.0)
    ahead = _Lane(lanes[0], 0.0, 4.0, [_Occupant(10.0, slow, 0, False, 15.0, 5.0)])
    assert ahead.time_to_collision(10.0) == pytest.approx(2.0)


def test_in_the_lane_frame_a_car_that_follows_a_curve_stays_in_its_lane():
    # a left bend: the ego car in the outer lane (radius 20 m), a car 9.8 m ahead along the
    # inner lane (radius 15 m) at 9 m/s; extrapolated along a straight line for the cut-in
    # horizon it swings 2.5 m outwards into the ego's lane, along the lane it stays where it is
    # (as on racetrack validation seed 100202)
    angles = np.linspace(-0.5, 2.0, 40)
    lanes = [
        LaneEstimate(i, 5.0, np.stack([r * np.sin(angles), r * np.cos(angles) - 20.0], axis=1))
        for i, r in enumerate((15.0, 20.0))
    ]
    theta = 9.75 / 15.0
    car = Detection(
        15.0 * math.sin(theta),
        15.0 * math.cos(theta) - 20.0,
        vx=9.0 * math.cos(theta),
        vy=-9.0 * math.sin(theta),
    )
    percept = Percept([car], lanes, 1, 10.0)
    straight = Planner(PlannerConfig(can_brake=False), dt=0.2)._lanes(percept)
    assert [o.later for o in straight[1].occupants] == [True]
    curved = Planner(PlannerConfig(can_brake=False, lane_frame=True), dt=0.2)._lanes(percept)
    assert curved[1].occupants == []
    ((gap, _, level, later, station, along),) = curved[0].occupants
    assert (level, later) == (0, True)
    assert station == pytest.approx(9.75, abs=0.1) and along == pytest.approx(9.0, abs=0.05)
    # its speed along its lane, not its ego-frame vx, sets the time to collision
    assert curved[0].time_to_collision(10.0, lane_frame=True) == pytest.approx(gap / 1.0, rel=0.05)


def test_the_reference_path_follows_the_target_lane():
    p = plan([Detection(12.0, 0.0, vx=15.0), Detection(0.5, -4.0, vx=25.0)])
    assert p.target_lane == 2 and p.lane == 1
    assert p.reference_path.shape[1] == 2
    np.testing.assert_allclose(p.reference_path[:, 1], 4.0)
    assert p.reference_path[0, 0] == pytest.approx(0.0) and np.all(
        np.diff(p.reference_path[:, 0]) > 0
    )


# -- control ----------------------------------------------------------------------------------
def test_the_controller_steers_towards_the_path():
    controller = Controller(ControlGains())
    xs = np.arange(0.0, 50.0, 2.5)
    for offset, sign in ((-2.0, -1), (0.0, 0), (2.0, 1)):
        path = np.stack([xs, np.full_like(xs, offset)], axis=1)
        accel, steer, terms = controller.control(path, 1.0, 25.0, 30.0)
        assert np.sign(round(steer, 6)) == sign, (offset, steer)
        assert terms["cross_track_error"] == pytest.approx(-offset)
        assert accel == pytest.approx(1.0 / 5.0)


def test_negative_steering_moves_the_car_left_in_the_simulator():
    env = envs.make("highway", overrides=TINY)
    env.reset(seed=0)
    y0 = env.sim.vehicle.position[1]
    for _ in range(3):
        *_, info = env.step(np.array([0.0, -0.1], dtype=np.float32))
    env.close()
    assert info["metrics"]["y"] < y0 - 0.1  # y right: left is smaller y


# -- perception -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gray", "rgb"])
def test_vision_finds_the_cars_and_the_lane_of_a_real_frame(kind):
    scenario = get_scenario("highway").with_overrides(
        {"vehicles_count": 30, "duration": 3, "observation": {"kind": kind}}
    )
    env = envs.make(scenario)
    obs, info = env.reset(seed=7)
    for _ in range(4):
        obs, *_, info = env.step(np.array([0.0, 0.0], dtype=np.float32))
    env.close()
    truth = OraclePerception().perceive(obs, info)
    found = VisionPerception(scenario).perceive(obs, {"metrics": info["metrics"]})  # no scene
    visible = [t for t in truth.detections if in_view(t, scenario)]
    assert visible, "the frame should show cars"
    for t in visible:
        assert min(math.hypot(t.x - d.x, t.y - d.y) for d in found.detections) < 1.0
    for d in found.detections:
        assert min(math.hypot(t.x - d.x, t.y - d.y) for t in truth.detections) < 1.5
    assert found.ego_speed == info["metrics"]["speed"]
    ego_truth = truth.lanes[truth.ego_lane].centerline
    ego_found = found.lanes[found.ego_lane].centerline
    assert found.lanes[found.ego_lane].index == truth.ego_lane
    assert np.interp(0.0, ego_found[:, 0], ego_found[:, 1]) == pytest.approx(
        np.interp(0.0, ego_truth[:, 0], ego_truth[:, 1]), abs=0.4
    )


def _frame_pair(nuisance: dict | None, seed: int = 7) -> tuple:
    """The 4th step's observation of a highway episode (with ``nuisance``), its info, scenario."""
    overrides = {"vehicles_count": 30, "duration": 3}
    if nuisance is not None:
        overrides["nuisance"] = nuisance
    scenario = get_scenario("highway").with_overrides(overrides)
    env = envs.make(scenario)
    obs, info = env.reset(seed=seed)
    for _ in range(4):
        obs, *_, info = env.step(np.array([0.0, 0.0], dtype=np.float32))
    env.close()
    return obs, info, scenario


def test_restoration_leaves_a_clean_frame_alone_and_undoes_a_contrast_change():
    clean, _, scenario = _frame_pair(None)
    vision = VisionPerception(scenario)
    assert vision.frames(clean) is clean  # the identity: the clean pipeline is unchanged
    for severity in (1, 3):
        dimmed, _, _ = _frame_pair({"kind": "brightness", "severity": severity})
        assert np.abs(dimmed.astype(int) - clean).max() > 20
        restored = vision.frames(dimmed)
        assert np.abs(restored.astype(int) - clean).max() <= 5  # rounding at gain 0.4
        for level in (MARKING_LEVEL, *VEHICLE_LEVELS):  # every pixel read as in the clean frame
            assert ((restored >= level) == (clean >= level)).all()


def test_restoration_paints_blurred_markings_back_and_leaves_no_phantom_car():
    clean, _, scenario = _frame_pair(None)
    blurred, _, _ = _frame_pair({"kind": "blur", "severity": 1})
    assert not (blurred[-1] >= MARKING_LEVEL).any()  # the fixed level sees no marking at all
    restored = VisionPerception(scenario).frames(blurred)[-1]
    truth, found = clean[-1] >= MARKING_LEVEL, restored >= MARKING_LEVEL
    assert (found & truth).sum() >= 0.9 * truth.sum()
    assert (found & ~truth).sum() <= 0.02 * truth.sum()
    bodies = (clean[-1] > VEHICLE_LEVELS[0]) & (clean[-1] < VEHICLE_LEVELS[1])
    seen = (restored > VEHICLE_LEVELS[0]) & (restored < VEHICLE_LEVELS[1])
    count, labels = cv2.connectedComponents(seen.astype(np.uint8))
    assert all(bodies[labels == k].any() for k in range(1, count))  # no phantom car
    count, labels = cv2.connectedComponents(bodies.astype(np.uint8))
    inside = [k for k in range(1, count) if not _touches_border(labels == k)]
    assert inside and all(seen[labels == k].any() for k in inside)  # every car in full view


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[[0, -1], :].any() or mask[:, [0, -1]].any())


@pytest.mark.parametrize(
    "nuisance",
    [
        {"kind": "brightness", "severity": 1},
        {"kind": "brightness", "severity": 3},
        {"kind": "blur", "severity": 1},
    ],
)
def test_vision_finds_the_cars_and_the_lane_through_a_nuisance(nuisance):
    obs, info, scenario = _frame_pair(nuisance)
    truth = OraclePerception().perceive(obs, info)
    found = VisionPerception(scenario).perceive(obs, {"metrics": info["metrics"]})
    visible = [t for t in truth.detections if in_view(t, scenario)]
    assert visible
    for t in visible:
        assert min(math.hypot(t.x - d.x, t.y - d.y) for d in found.detections) < 1.0
    for d in found.detections:
        assert min(math.hypot(t.x - d.x, t.y - d.y) for t in truth.detections) < 1.5
    assert found.lanes[found.ego_lane].index == truth.ego_lane


def test_vision_fits_the_curved_lanes_of_a_racetrack_bend():
    # the oracle drives into the first bend; at every step vision's ego lane must sit on the
    # ground truth at the car, and 8 m on, where the bend shows, in most steps (highway-env
    # leaves out some curve markings near the car in a few frames)
    scenario = get_scenario("racetrack").with_overrides({"duration": 10})
    env, oracle = envs.make(scenario), make_oracle_agent(scenario)
    obs, info = env.reset(seed=100_000)
    vision = VisionPerception(scenario)
    ahead_errors = []
    for _ in range(40):
        found = vision.perceive(obs, {"metrics": info["metrics"]})  # no scene
        truth = OraclePerception().perceive(obs, info)
        line_true = truth.lanes[truth.ego_lane].centerline
        line_found = found.lanes[found.ego_lane].centerline
        assert project(line_found, np.zeros(2))[1] == pytest.approx(
            project(line_true, np.zeros(2))[1], abs=0.5
        )
        ahead = np.array([[8.0, 0.0]])
        ahead_errors.append(
            abs(project_points(line_found, ahead)[1][0] - project_points(line_true, ahead)[1][0])
        )
        obs, _, terminated, truncated, info = env.step(oracle.act(obs, info))
        assert not (terminated or truncated)
    env.close()
    assert abs(info["metrics"]["heading"]) > 0.5  # it did turn
    assert np.mean(np.asarray(ahead_errors) < 1.0) >= 0.8


def test_vision_heading_faces_the_way_the_car_drives_without_headlights():
    # at the roundabout's 2.5 px/m the cars' outline covers their headlights: the half turn of
    # the heading comes from the motion through the stack, from the second frame on
    scenario = get_scenario("roundabout").with_overrides({"duration": 3})
    assert not headlights_drawn(scenario.observation.scaling)
    assert headlights_drawn(get_scenario("highway").observation.scaling)
    env, oracle = envs.make(scenario), make_oracle_agent(scenario)
    obs, info = env.reset(seed=100_000)
    vision = VisionPerception(scenario)
    for step in range(10):
        found = vision.perceive(obs, {"metrics": info["metrics"]})  # no scene
        truth = OraclePerception().perceive(obs, info)
        if step == 0:
            assert not found.lanes and not found.detections  # the half turn is not known yet
        else:
            assert abs(math.remainder(found.heading - truth.heading, 2 * math.pi)) < 0.2
        obs, _, terminated, truncated, info = env.step(oracle.act(obs, info))
        assert not (terminated or truncated)
    env.close()


def test_vision_finds_the_roundabout_ring_and_follows_the_route_through_it():
    # roundabout-generic's ring is centred on the world origin, its outer edge 26 m out (the
    # outer lane at 24 m, 4 m wide); the ring is found where it is, and the route's lane
    # (entry, ring, exit) lies on the true one ahead of the car
    scenario = get_scenario("roundabout").with_overrides({"vehicles_count": 2})
    env, oracle = envs.make(scenario), make_oracle_agent(scenario)
    obs, info = env.reset(seed=100_000)
    vision = VisionPerception(scenario)
    sightings, errors = 0, []
    for _ in range(scenario.steps_per_episode):
        found = vision.perceive(obs, {"metrics": info["metrics"]})  # no scene
        truth = OraclePerception().perceive(obs, info)
        ring = vision._ring.ring if vision._ring is not None else None
        if ring is not None and np.linalg.norm(info["scene"].ego.position) < 40.0:
            # (followed by the car's own motion once it is out of view, it drifts)
            sightings += 1
            assert np.linalg.norm(info["scene"].ego.position + ring.centre) < 1.0
            assert abs(ring.radius - 26.0) < 1.0
        if found.lanes and truth.ego_lane >= 0:
            # the true lane 8 m ahead, in the frame vision estimated, against vision's lane
            true_line = truth.lanes[truth.ego_lane].centerline
            s0, _ = project(true_line, np.zeros(2))
            arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(true_line, axis=0).T))])
            point = np.array([np.interp(s0 + 8.0, arc, true_line[:, i]) for i in (0, 1)])
            turn = truth.heading - found.heading
            c, s = math.cos(turn), math.sin(turn)
            seen = np.array([c * point[0] - s * point[1], s * point[0] + c * point[1]])
            errors.append(abs(project(found.lanes[found.ego_lane].centerline, seen)[1]))
        obs, _, terminated, truncated, info = env.step(oracle.act(obs, info))
        if terminated or truncated:
            break
    env.close()
    assert info["metrics"]["goal"] == 1.0
    assert sightings > 40
    assert np.mean(np.asarray(errors) < 1.0) >= 0.9


def test_vision_drives_the_roundabout_to_its_exit():
    scenario = get_scenario("roundabout").with_overrides({"vehicles_count": 2})
    (ep,) = rollout(make_vision_agent(scenario), scenario, [100_000])
    assert ep.terminated and ep.metrics["goal"][-1] == 1.0
    assert ep.metrics["crashed"].max() == 0 and ep.metrics["on_road"].min() == 1.0


def test_agent_specs_take_their_arguments_only():
    with pytest.raises(UserError, match="no argument"):
        make_oracle_agent(get_scenario("highway"), "x")
    with pytest.raises(UserError, match="no argument"):
        make_vision_agent(get_scenario("racetrack"), "x")


def test_modular_vision_drives_a_racetrack_episode_on_the_road():
    scenario = get_scenario("racetrack").with_overrides({"duration": 10})
    (ep,) = rollout(make_vision_agent(scenario), scenario, [100_000])
    assert ep.truncated and not ep.terminated
    assert ep.metrics["on_road"].min() == 1.0 and np.abs(ep.metrics["lane_offset"]).max() < 1.5


# -- whole agent --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [make_oracle_agent, make_vision_agent])
def test_the_agent_drives_tiny_highway_episodes_without_crashing(make):
    scenario = get_scenario("highway").with_overrides({"vehicles_count": 12, "duration": 8})
    agent = make(scenario)
    assert agent.privileged is (make is make_oracle_agent)
    episodes = rollout(agent, scenario, [1_000_000, 1_000_001], record_explanations=True)
    for ep in episodes:
        assert ep.truncated and not ep.terminated and ep.metrics["crashed"].max() == 0
        assert ep.metrics["speed"].mean() > 18.0
        assert np.abs(ep.metrics["lane_offset"]).max() < 2.0
        last = ep.explanations[-1]
        assert set(last) >= EXPLAIN_KEYS
        assert last["reference_path"].ndim == 2 and last["reference_path"].shape[1] == 2
        assert {
            "cross_track_error",
            "heading_error",
            "lookahead",
            "steer",
            "accel",
            "speed_error",
        } <= set(last["controller"])
    # latency is recorded per decision (its speed is a benchmark's business, not a test's)
    assert all(np.isfinite(ep.latency_ms).all() and (ep.latency_ms > 0).all() for ep in episodes)


def test_labelling_oracles_forget_a_lane_decision_the_car_did_not_follow():
    # DAgger's labellers: when the network, not the oracle, drove the car, the oracle's memory of
    # a lane change (here planted by hand) must not decide the label; the frame alone does
    scenario = get_scenario("highway").with_overrides(TINY)
    env = envs.make(scenario)
    obs, info = env.reset(seed=1_000_000)
    env.close()
    for arg in (None, "memoryless", "nearest-lane"):
        agent = make_oracle_agent(scenario, arg)
        agent.reset(1_000_000)
        agent.act(obs, info)
        first = agent.explain()
        # plant the neighbour lane the oracle did not choose (4 m lanes, y to the right)
        side = -1 if first["target_lane"] >= first["lane"] else 1
        agent._state[0] = PlannerState(target_offset=4.0 * side - first["lateral_offset"])
        agent.act(obs, info)
        planted = agent.explain()
        assert agent.describe()["memoryless"] is (arg is not None)
        if arg is None:  # the stateful oracle heads for the lane it remembers
            assert planted["target_lane"] == first["lane"] + side
            assert planted["decision"] == ("change left" if side < 0 else "change right")
        else:  # a labeller decides from the frame as if it had just taken over
            assert planted["target_lane"] == first["target_lane"]
            assert planted["decision"] == first["decision"]
        if arg == "nearest-lane":  # and this one only ever keeps to the nearest lane
            assert planted["decision"] == "keep lane" and planted["target_lane"] == first["lane"]


@pytest.mark.parametrize("name", ["highway-dense", "merge", "racetrack"])
def test_the_oracle_runs_the_other_scenarios(name):
    scenario = get_scenario(name).with_overrides({"duration": 3})
    agent = make_oracle_agent(scenario)
    (ep,) = rollout(agent, scenario, [1_000_000])
    assert ep.actions.shape == (ep.steps, scenario.action.size)
    assert ep.metrics["crashed"].max() == 0


def test_the_oracle_gives_way_to_a_car_crossing_its_path():
    # a car 20 m ahead and 20 m to the right crosses the ego's lane at 10 m/s, reaching it
    # about when the ego car would: the ego stops before the crossing (and not without it)
    times = np.arange(0.0, 4.01, 0.25)
    crossing = np.stack([np.full_like(times, 20.0), 20.0 - 10.0 * times], axis=1)
    car = Detection(20.0, 20.0, vy=-10.0, predicted=crossing)
    config = PlannerConfig(yield_gap=1.0)
    percept = Percept([car], straight_lanes(1), 1, 10.0)
    plan = Planner(config, dt=0.2).plan(percept, PlannerState())
    assert plan.decision == "yield" and plan.accel < -1.0 and plan.leader_gap < 20.0
    free = Planner(PlannerConfig(), dt=0.2).plan(percept, PlannerState())
    assert free.decision == "keep lane" and free.accel > 0


def test_the_roundabout_oracle_gives_way_to_the_left_only():
    # the same crossing car coming from the left is given way to; from the right (a car
    # entering the ring the ego car is on) it is not
    times = np.arange(0.0, 4.01, 0.25)
    config = PlannerConfig(yield_gap=1.0, yield_left_only=True)
    for side, decision in ((-1.0, "yield"), (1.0, "keep lane")):
        crossing = np.stack([np.full_like(times, 20.0), side * (20.0 - 10.0 * times)], axis=1)
        car = Detection(20.0, side * 20.0, vy=-side * 10.0, predicted=crossing)
        percept = Percept([car], straight_lanes(1), 1, 10.0)
        assert Planner(config, dt=0.2).plan(percept, PlannerState()).decision == decision


def test_only_the_roundabout_oracle_keeps_the_shorter_yield_gap():
    # the oracle's ground truth needs less margin to the ring's cars than vision's tracks;
    # a car from the left that clears the conflict point less than vision's gap but more than
    # the oracle's before the ego car reaches it is given way to by vision only
    scenario = get_scenario("roundabout")
    oracle, _ = settings_for(scenario)
    vision, _ = settings_for(scenario, vision=True)
    assert oracle.yield_gap < vision.yield_gap
    times = np.arange(0.0, 4.01, 0.25)
    crossing = np.stack([np.full_like(times, 20.0), -(4.0 - 10.0 * times)], axis=1)
    car = Detection(20.0, -4.0, vy=10.0, predicted=crossing)
    percept = Percept([car], straight_lanes(1), 1, 10.0)
    decisions = [
        Planner(config, dt=0.2).plan(percept, PlannerState()).decision
        for config in (oracle, vision)
    ]
    assert decisions == ["keep lane", "yield"]


def test_the_planner_never_reverses():
    # stopped or rolling back 3 m behind a stopped car: IDM brakes hard, but the planner asks
    # for no more than a stop within the step (highway-env's cars reverse otherwise)
    car = Detection(8.0, 0.0, vx=0.0)
    for speed, bound in ((0.0, 0.0), (-1.0, 5.0), (0.4, -2.0)):
        percept = Percept([car], straight_lanes(1), 1, speed)
        accel = Planner(PlannerConfig(), dt=0.2).plan(percept, PlannerState()).accel
        assert accel == pytest.approx(bound)


def test_the_oracle_slows_for_a_curve_ahead():
    # a lane turning on a 20 m radius 10 m ahead: at most sqrt(3.5 * 20) = 8.4 m/s there
    arc = np.arange(0.0, 80.0, 5.0)
    straight = arc[arc <= 10.0]
    bend = (arc[arc > 10.0] - 10.0) / 20.0
    line = np.concatenate(
        [
            np.stack([straight, np.zeros_like(straight)], axis=1),
            np.stack([10.0 + 20.0 * np.sin(bend), 20.0 * (1 - np.cos(bend))], axis=1),
        ]
    )
    percept = Percept([], [LaneEstimate(0, 4.0, line)], 0, 14.0)
    curved = Planner(PlannerConfig(curve_lateral_accel=3.5), dt=0.2).plan(percept, PlannerState())
    assert curved.accel < -1.0  # from 14 m/s, 10 m before the bend
    assert Planner(PlannerConfig(), dt=0.2).plan(percept, PlannerState()).accel > 0


def test_the_exit_oracle_takes_a_gap_to_the_right_that_mobil_refuses():
    # 9 m/s beside a 19 m gap between cars at 9 m/s on the right: too short for MOBIL's safety
    # criterion, long enough for a mandatory change (3 m + 0.3 s of speed each side)
    cars = [Detection(12.0, 4.0, vx=9.0), Detection(-12.0, 4.0, vx=9.0)]
    percept = Percept(cars, straight_lanes(0, count=2), 0, 9.0)
    exiting = Planner(PlannerConfig(exit_right=True), dt=0.2).plan(percept, PlannerState())
    assert exiting.decision == "change right"
    assert Planner(PlannerConfig(), dt=0.2).plan(percept, PlannerState()).decision == "keep lane"


def test_the_exit_oracle_enters_a_lane_whose_centre_line_bends_into_the_exit():
    # the scene's centre lines follow the route into the exit ramp, so the lane beside the
    # exit lane runs into it ahead: it does not end, and the exit oracle changes into it
    lanes = straight_lanes(0, count=3)
    line = lanes[1].centerline.copy()
    line[:, 1] += np.clip((line[:, 0] - 20.0) / 40.0, 0.0, 1.0) * 4.0  # reaches lane 2 at 60 m
    lanes[1] = LaneEstimate(1, 4.0, line)
    percept = Percept([], lanes, 0, 20.0)
    exiting = Planner(PlannerConfig(exit_right=True), dt=0.2).plan(percept, PlannerState())
    assert exiting.decision == "change right"


def test_the_exit_oracle_lines_up_with_a_gap_and_never_changes_left():
    # a car alongside on the right blocks the change; behind a leader as slow as that lane,
    # the gap behind it is the one reached soonest, so the car slows for it (and ignores the
    # free lane on the left, which MOBIL would take)
    cars = [Detection(1.0, 4.0, vx=9.0), Detection(40.0, 4.0, vx=9.0), Detection(25.0, 0.0, vx=9.0)]
    percept = Percept(cars, straight_lanes(1, count=3), 1, 9.0)
    plan = Planner(PlannerConfig(exit_right=True), dt=0.2).plan(percept, PlannerState())
    assert plan.decision == "keep lane" and plan.accel < -1.0
    assert Planner(PlannerConfig(), dt=0.2).plan(percept, PlannerState()).decision == "change left"


def test_near_the_exit_the_oracle_accepts_a_shorter_gap_and_slows_for_one_behind():
    # 10 m/s beside a 5.5 m bumper gap each side at 10 m/s: short of 3 m + 0.3 s of speed,
    # enough for the urgent 3 m + 0.15 s once the route leaves the road 10 m ahead
    urgent = PlannerConfig(exit_right=True, exit_urgency_distance=250.0, urgent_headway=0.15)
    cars = [Detection(10.5, 4.0, vx=10.0), Detection(-10.5, 4.0, vx=10.0)]
    far, near = (
        Percept(cars, straight_lanes(0, count=2), 0, 10.0, route_remaining_m=m)
        for m in (300.0, 10.0)
    )
    assert Planner(urgent, dt=0.2).plan(far, PlannerState()).decision == "keep lane"
    assert Planner(urgent, dt=0.2).plan(near, PlannerState()).decision == "change right"
    # behind a 16 m/s leader, a car alongside on the right at 10 m/s: the gap ahead of it is
    # chased while the exit is far, the one behind it is waited for near the exit
    cars = [Detection(30.0, 0.0, vx=16.0), Detection(1.0, 4.0, vx=10.0)]
    cars += [Detection(-39.0, 4.0, vx=10.0), Detection(41.0, 4.0, vx=10.0)]
    far, near, unknown = (
        Percept(cars, straight_lanes(0, count=2), 0, 14.0, route_remaining_m=m)
        for m in (300.0, 10.0, None)
    )
    chase = Planner(urgent, dt=0.2).plan(far, PlannerState()).accel
    assert Planner(urgent, dt=0.2).plan(near, PlannerState()).accel < chase - 1.0
    assert Planner(urgent, dt=0.2).plan(unknown, PlannerState()).accel == chase


def test_the_exit_scene_tells_the_distance_to_the_exit():
    scenario = get_scenario("exit")
    env = envs.make(scenario)
    _, info = env.reset(seed=100_000)
    scene = info["scene"]
    # the exit lane runs from 400 m to 500 m, where the exit ramp (the route's last road) starts
    assert scene.route_remaining == pytest.approx(500.0 - scene.ego.position[0])
    assert OraclePerception().perceive(None, info).route_remaining_m == scene.route_remaining
    env.close()


def test_the_oracle_drives_the_roundabout_to_its_exit():
    scenario = get_scenario("roundabout").with_overrides({"vehicles_count": 2})
    (ep,) = rollout(make_oracle_agent(scenario), scenario, [1_000_000])
    assert ep.terminated and ep.metrics["goal"][-1] == 1.0
    assert ep.metrics["crashed"].max() == 0 and ep.metrics["on_road"].min() == 1.0


# -- command line -----------------------------------------------------------------------------
def test_driving_perception_prints_precision_and_recall(driving_cli):
    result = driving_cli(
        [
            "perception",
            "--episodes",
            "1",
            "--overrides",
            '{"vehicles_count": 20, "duration": 3}',
            "--quiet",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert "precision" in result.stdout and "recall" in result.stdout
    ahead = next(line for line in result.stdout.splitlines() if line.startswith("ahead"))
    assert float(ahead.split()[8]) >= 0.9  # the recall of cars ahead


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["perception", "--episodes", "0"], "positive integer"),
        (
            ["evaluate", "--agent", "modular-vision:x", "--episodes", "1", "--out", "o"],
            "no argument",
        ),
    ],
)
def test_bad_arguments_give_one_line_errors(driving_cli, tmp_path, args, needle):
    assert_one_line_error(driving_cli(args, cwd=tmp_path), needle)


def test_a_car_level_with_the_ego_car_is_alongside_not_a_follower_with_room():
    # exactly level (station 0): the signed bumper gap is -5 m; read as a follower it used to
    # get +5 m, which a started lane change's halved gaps accepted
    lanes = straight_lanes(1, count=2)
    level = Detection(0.0, -4.0, vx=20.0)
    lane = _Lane(lanes[0], 0.0, 4.0, [_Occupant(-5.0, level, 0, True, 0.0, 20.0)])
    gap, car = lane.follower(0)
    assert car is level and gap <= 0.0
    behind = Detection(-12.0, -4.0, vx=20.0)  # really behind: it keeps its bumper gap
    lane = _Lane(lanes[0], 0.0, 4.0, [_Occupant(-7.0, behind, 0, True, -12.0, 20.0)])
    assert lane.follower(0) == (pytest.approx(7.0), behind)
