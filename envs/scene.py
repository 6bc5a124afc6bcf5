"""The ground-truth scene and per-step metrics that the environment puts in ``info``.

Only an oracle agent may read :class:`Scene`; every agent and the metrics code may read
:class:`StepMetrics`-style values in ``info["metrics"]``.

Frames: world coordinates are highway-env's: x along the road [m], y across it [m], y grows
towards the right-hand lanes (higher lane ids), headings in rad measured from +x towards +y.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from envs.scenarios import Route

LANE_SAMPLE_SPACING_M = 5.0
"""Spacing [m] between the centre-line points of :class:`LaneGeometry`."""
LANE_LOOKAHEAD_M = 80.0
"""How far ahead [m] of the ego car the lane centre lines are sampled."""
LANE_LOOKBEHIND_M = 10.0
"""How far behind [m] of the ego car the lane centre lines start."""
SCENE_RADIUS_M = 100.0
"""Vehicles farther than this [m] from the ego car are left out of the scene."""
ROUTE_JOIN_M = 6.0
"""A lane joins the route's next road when that road has a lane starting within this [m] of
the lane's end. highway-env's roundabout leaves gaps of up to 5.6 m between an entry and the
ring (its sine lanes are not fitted to the circle); a lane that ends farther than this from the
route's next road (the roundabout's inner ring at an exit, the exit-v0 through lanes) goes on
along the road it is on."""
PREDICTION_TIMES_S = np.arange(0.0, 4.0 + 1e-9, 0.25)
"""Times [s] at which :attr:`VehicleState.predicted` gives a vehicle's future position."""


def _fields_equal(a: object, b: object) -> bool:
    """Dataclass equality that compares array fields element-wise."""
    if type(a) is not type(b):
        return NotImplemented
    return all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        for x, y in zip(vars(a).values(), vars(b).values(), strict=True)
    )


@dataclass(eq=False)
class VehicleState:
    """One vehicle's ground truth, in world coordinates.

    Attributes:
        position: ``(2,)`` centre ``[x, y]`` [m].
        heading: [rad].
        speed: [m/s] along the heading.
        length, width: body size [m].
        lane: index of the lane it occupies among the ego road's side lanes (-1 if elsewhere).
        predicted: ``(len(PREDICTION_TIMES_S), 2)`` world positions [m] at
            :data:`PREDICTION_TIMES_S` if it keeps its speed along its planned route
            (highway-env's ``predict_trajectory_constant_speed``), or None where the scene was
            extracted without predictions (roads without junctions) or it plans no route.
    """

    position: np.ndarray
    heading: float
    speed: float
    length: float
    width: float
    lane: int
    predicted: np.ndarray | None = None

    __eq__ = _fields_equal

    @property
    def velocity(self) -> np.ndarray:
        """``(2,)`` world velocity [m/s]."""
        return self.speed * np.array([math.cos(self.heading), math.sin(self.heading)])


@dataclass(eq=False)
class LaneGeometry:
    """One lane near the ego car.

    Attributes:
        lane: index among the side lanes of the ego's road (0 = left-most).
        width: lane width [m].
        centerline: ``(K, 2)`` world points [m] of the lane centre, from
            ``LANE_LOOKBEHIND_M`` behind to ``LANE_LOOKAHEAD_M`` ahead of the ego car's
            longitudinal position, ``LANE_SAMPLE_SPACING_M`` apart, following the road.
        speed_limit: [m/s], or ``nan`` when the lane has none.
    """

    lane: int
    width: float
    centerline: np.ndarray
    speed_limit: float = math.nan

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LaneGeometry):
            return NotImplemented
        return (
            self.lane == other.lane
            and self.width == other.width
            and np.array_equal(self.centerline, other.centerline)
            and (
                self.speed_limit == other.speed_limit
                or (math.isnan(self.speed_limit) and math.isnan(other.speed_limit))
            )
        )


@dataclass
class Scene:
    """The ground-truth scene around the ego car at one decision step.

    Attributes:
        time: simulated time since reset [s].
        ego: the ego car.
        ego_lane: the lane it occupies (index into ``lanes``).
        lanes: the side lanes of the ego's road, left-most first.
        vehicles: other vehicles within ``SCENE_RADIUS_M``, nearest first.
        route_remaining: with a route, the distance [m] along the ego's lane and the lanes
            that follow it on the route to the start of the route's last road, where the car
            must have left the road it drives on (0 on the last road); None without a route or
            off it (:func:`route_remaining`).
    """

    time: float
    ego: VehicleState
    ego_lane: int
    lanes: list[LaneGeometry] = field(default_factory=list)
    vehicles: list[VehicleState] = field(default_factory=list)
    route_remaining: float | None = None


def _lane_position(
    lane_index: tuple, network, s_values: np.ndarray, route: Route | None = None
) -> np.ndarray:
    """Sample ``(len(s_values), 2)`` centre points, following successor lanes past the end
    (along ``route`` where the lane joins it, see :func:`_next_lane`)."""
    points = np.empty((len(s_values), 2))
    index = lane_index
    lane = network.get_lane(index)
    offset = 0.0  # longitudinal coordinate of `lane`'s start in the first lane's frame
    for k, s in enumerate(s_values):
        while s - offset > lane.length and not _is_open_ended(lane):
            nxt = _next_lane(network, index, route)
            if nxt is None:
                break
            offset += lane.length
            index, lane = nxt, network.get_lane(nxt)
        points[k] = lane.position(s - offset, 0.0)
    return points


def _is_open_ended(lane) -> bool:
    return lane.length >= 1e4


def _next_lane(network, index: tuple, route: Route | None = None) -> tuple | None:
    """The successor lane: on ``route``'s next road the lane starting nearest to this lane's
    end, if within :data:`ROUTE_JOIN_M`; otherwise the first next road by name, keeping the
    same lane id where possible (deterministic)."""
    _from, _to, _id = index
    successors = network.graph.get(_to)
    if not successors:
        return None
    route_next = route.next_node((_from, _to)) if route is not None else None
    if route_next in successors:
        lane = network.get_lane(index)
        end = lane.position(lane.length, 0.0)
        lanes = successors[route_next]
        gaps = [float(np.linalg.norm(candidate.position(0.0, 0.0) - end)) for candidate in lanes]
        k = int(np.argmin(gaps))
        if gaps[k] < ROUTE_JOIN_M:
            return (_to, route_next, k)
    next_to = sorted(successors)[0]
    lanes = successors[next_to]
    return (_to, next_to, min(_id, len(lanes) - 1))


def _predict_along_route(vehicle, network, times: np.ndarray) -> np.ndarray:
    """``(len(times), 2)`` positions [m] of ``vehicle`` at ``times`` [s] if it keeps its speed
    along the centre of its lane and then of the lanes its route takes (highway-env's own
    lane choice, :func:`_next_on_route`). highway-env's ``predict_trajectory_constant_speed``
    keeps the current lane id onto the next road, which fails where that road has fewer lanes
    (a roundabout's exit), hence this walk."""
    route = list(vehicle.route)
    index = vehicle.lane_index
    lane = network.get_lane(index)
    s = lane.local_coordinates(vehicle.position)[0]
    out = np.empty((len(times), 2))
    previous = 0.0
    for k, t in enumerate(times):
        s += vehicle.speed * (float(t) - previous)
        previous = float(t)
        while s > lane.length and not _is_open_ended(lane):
            nxt = _next_on_route(network, index, route, lane.position(lane.length, 0.0))
            if nxt is None:
                break
            s -= lane.length
            index, lane = nxt, network.get_lane(nxt)
        out[k] = lane.position(s, 0.0)
    return out


def _next_on_route(network, index: tuple, route: list, end: np.ndarray) -> tuple | None:
    """The lane after ``index`` of a vehicle planning ``route`` (highway-env lane indices): the
    route's road starting where ``index`` ends, else the next road with the lane nearest to
    ``end`` (the lane's end point); its lane as highway-env's ``next_lane_given_next_road``
    picks it. None at a dead end."""
    _from, _to, _id = index
    successors = network.graph.get(_to)
    if not successors:
        return None
    planned = [road[1] for road in route if road[0] == _to and road[1] in successors]
    if planned:
        next_to = planned[0]
    else:
        next_to = min(
            successors,
            key=lambda to: network.next_lane_given_next_road(_from, _to, _id, to, None, end)[1],
        )
    next_id, _ = network.next_lane_given_next_road(_from, _to, _id, next_to, None, end)
    return (_to, next_to, next_id)


def vehicle_state(vehicle, side_lanes: list[tuple], predict: bool = False) -> VehicleState:
    """Ground truth of one highway-env vehicle (``predict``: with its predicted positions)."""
    lane_index = getattr(vehicle, "lane_index", None)
    lane = side_lanes.index(lane_index) if lane_index in side_lanes else -1
    predicted = None
    if predict and getattr(vehicle, "route", None) is not None and vehicle.lane_index:
        predicted = _predict_along_route(vehicle, vehicle.road.network, PREDICTION_TIMES_S)
    return VehicleState(
        position=np.array(vehicle.position, dtype=float),
        heading=float(vehicle.heading),
        speed=float(vehicle.speed),
        length=float(vehicle.LENGTH),
        width=float(vehicle.WIDTH),
        lane=lane,
        predicted=predicted,
    )


def route_remaining(network, lane_index: tuple, s: float, route: Route) -> float | None:
    """Distance [m] from station ``s`` [m] on lane ``lane_index`` to the start of ``route``'s
    last road: the rest of this lane plus the lengths of the route's roads in between (of the
    lane with the same id, or the right-most where a road has fewer lanes); 0 on the last road,
    None off the route."""
    roads = list(itertools.pairwise(route.nodes))
    road, lane_id = tuple(lane_index[:2]), lane_index[2]
    if road not in roads:
        return None
    k = roads.index(road)
    if k == len(roads) - 1:
        return 0.0
    remaining = network.get_lane(lane_index).length - s
    for a, b in roads[k + 1 : -1]:
        lanes = network.graph[a][b]
        remaining += lanes[min(lane_id, len(lanes) - 1)].length
    return max(remaining, 0.0)


def extract_scene(env, route: Route | None = None) -> Scene:
    """Read the ground-truth :class:`Scene` off a highway-env env (``env.unwrapped``).

    With a ``route``, the lane centre lines follow it at junctions, every vehicle carries
    its predicted positions (:attr:`VehicleState.predicted`), which an oracle needs to yield at
    a junction, and the scene the distance left to the route's last road
    (:attr:`Scene.route_remaining`); without one (straight roads) none is computed.
    """
    road, ego = env.road, env.vehicle
    network = road.network
    side_lanes = list(network.all_side_lanes(ego.lane_index))
    s_ego = network.get_lane(ego.lane_index).local_coordinates(ego.position)[0]
    s_values = s_ego + np.arange(-LANE_LOOKBEHIND_M, LANE_LOOKAHEAD_M + 1e-9, LANE_SAMPLE_SPACING_M)
    lanes = []
    for i, index in enumerate(side_lanes):
        lane = network.get_lane(index)
        lanes.append(
            LaneGeometry(
                lane=i,
                width=float(lane.width_at(s_ego)),
                centerline=_lane_position(index, network, s_values, route),
                speed_limit=float(lane.speed_limit) if lane.speed_limit else math.nan,
            )
        )
    others = [
        (float(np.linalg.norm(v.position - ego.position)), v) for v in road.vehicles if v is not ego
    ]
    others = sorted(((d, v) for d, v in others if d < SCENE_RADIUS_M), key=lambda item: item[0])
    return Scene(
        time=float(env.time),
        ego=vehicle_state(ego, side_lanes),
        ego_lane=side_lanes.index(ego.lane_index),
        lanes=lanes,
        vehicles=[vehicle_state(v, side_lanes, predict=route is not None) for _, v in others],
        route_remaining=(
            route_remaining(network, ego.lane_index, s_ego, route) if route is not None else None
        ),
    )


def goal_reached(env, route: Route) -> bool:
    """Whether the ego car is on ``route``'s last road at least ``goal_distance`` along it."""
    ego = env.vehicle
    if tuple(ego.lane_index[:2]) != route.last_road:
        return False
    s, _ = env.road.network.get_lane(ego.lane_index).local_coordinates(ego.position)
    return bool(s >= route.goal_distance)


def step_metrics(env, route: Route | None = None) -> dict[str, float]:
    """Per-step metrics of the ego car, all plain floats (booleans as 0.0/1.0).

    Keys: ``speed`` [m/s]; ``lane_offset`` [m] lateral offset from the centre of the lane the
    car occupies (positive = right); ``heading_error`` [rad] relative to that lane's heading;
    ``on_road`` (1 if on a lane); ``crashed`` (1 after a collision); ``gap_front`` [m]
    bumper-to-bumper distance to the car ahead in the same lane (inf if none); ``ttc_front``
    [s] time to collision with it at current speeds (inf if not closing); ``x``, ``y`` [m]
    ego position; ``lane`` the ego lane's index; ``heading`` [rad] the ego's heading in the
    world frame; ``gap_rear`` [m] bumper-to-bumper distance to the car behind in the same lane
    (inf if none); ``speed_limit`` [m/s] the ego lane's speed limit (nan if it has none);
    with a ``route`` only (so the keys of route-less scenarios stay as they were, e.g. in
    datasets), ``goal`` (1 once the ego car has reached the route's end, :func:`goal_reached`).
    """
    road, ego = env.road, env.vehicle
    lane = road.network.get_lane(ego.lane_index)
    s, r = lane.local_coordinates(ego.position)
    heading_error = (ego.heading - lane.heading_at(s) + math.pi) % (2 * math.pi) - math.pi
    front, rear = road.neighbour_vehicles(ego, ego.lane_index)
    gap = ttc = gap_rear = math.inf
    if front is not None:
        gap = max(0.0, float(ego.lane_distance_to(front)) - (ego.LENGTH + front.LENGTH) / 2)
        closing = ego.speed - front.speed
        if closing > 1e-6:
            ttc = gap / closing
    if rear is not None:
        gap_rear = max(0.0, -float(ego.lane_distance_to(rear)) - (ego.LENGTH + rear.LENGTH) / 2)
    side = list(road.network.all_side_lanes(ego.lane_index))
    metrics = {
        "speed": float(ego.speed),
        "lane_offset": float(r),
        "heading_error": float(heading_error),
        "on_road": float(ego.on_road),
        "crashed": float(ego.crashed),
        "gap_front": gap,
        "ttc_front": ttc,
        "x": float(ego.position[0]),
        "y": float(ego.position[1]),
        "lane": float(side.index(ego.lane_index)),
        "heading": float(ego.heading),
        "gap_rear": gap_rear,
        "speed_limit": float(lane.speed_limit) if lane.speed_limit else math.nan,
    }
    if route is not None:
        metrics["goal"] = float(goal_reached(env, route))
    return metrics
