"""The ground-truth scene and per-step metrics that the environment puts in ``info``.

Only an oracle agent may read :class:`Scene`; every agent and the metrics code may read
:class:`StepMetrics`-style values in ``info["metrics"]``.

Frames: world coordinates are highway-env's: x along the road [m], y across it [m], y grows
towards the right-hand lanes (higher lane ids), headings in rad measured from +x towards +y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

LANE_SAMPLE_SPACING_M = 5.0
"""Spacing [m] between the centre-line points of :class:`LaneGeometry`."""
LANE_LOOKAHEAD_M = 80.0
"""How far ahead [m] of the ego car the lane centre lines are sampled."""
LANE_LOOKBEHIND_M = 10.0
"""How far behind [m] of the ego car the lane centre lines start."""
SCENE_RADIUS_M = 100.0
"""Vehicles farther than this [m] from the ego car are left out of the scene."""


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
    """

    position: np.ndarray
    heading: float
    speed: float
    length: float
    width: float
    lane: int

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
    """

    time: float
    ego: VehicleState
    ego_lane: int
    lanes: list[LaneGeometry] = field(default_factory=list)
    vehicles: list[VehicleState] = field(default_factory=list)


def _lane_position(lane_index: tuple, network, s_values: np.ndarray) -> np.ndarray:
    """Sample ``(len(s_values), 2)`` centre points, following successor lanes past the end."""
    points = np.empty((len(s_values), 2))
    index = lane_index
    lane = network.get_lane(index)
    offset = 0.0  # longitudinal coordinate of `lane`'s start in the first lane's frame
    for k, s in enumerate(s_values):
        while s - offset > lane.length and not _is_open_ended(lane):
            nxt = _next_lane(network, index)
            if nxt is None:
                break
            offset += lane.length
            index, lane = nxt, network.get_lane(nxt)
        points[k] = lane.position(s - offset, 0.0)
    return points


def _is_open_ended(lane) -> bool:
    return lane.length >= 1e4


def _next_lane(network, index: tuple) -> tuple | None:
    """The successor lane keeping the same lane id where possible (deterministic)."""
    _from, _to, _id = index
    successors = network.graph.get(_to)
    if not successors:
        return None
    next_to = sorted(successors)[0]
    lanes = successors[next_to]
    return (_to, next_to, min(_id, len(lanes) - 1))


def vehicle_state(vehicle, side_lanes: list[tuple]) -> VehicleState:
    """Ground truth of one highway-env vehicle."""
    lane_index = getattr(vehicle, "lane_index", None)
    lane = side_lanes.index(lane_index) if lane_index in side_lanes else -1
    return VehicleState(
        position=np.array(vehicle.position, dtype=float),
        heading=float(vehicle.heading),
        speed=float(vehicle.speed),
        length=float(vehicle.LENGTH),
        width=float(vehicle.WIDTH),
        lane=lane,
    )


def extract_scene(env) -> Scene:
    """Read the ground-truth :class:`Scene` off a highway-env env (``env.unwrapped``)."""
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
                centerline=_lane_position(index, network, s_values),
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
        vehicles=[vehicle_state(v, side_lanes) for _, v in others],
    )


def step_metrics(env) -> dict[str, float]:
    """Per-step metrics of the ego car, all plain floats (booleans as 0.0/1.0).

    Keys: ``speed`` [m/s]; ``lane_offset`` [m] lateral offset from the centre of the lane the
    car occupies (positive = right); ``heading_error`` [rad] relative to that lane's heading;
    ``on_road`` (1 if on a lane); ``crashed`` (1 after a collision); ``gap_front`` [m]
    bumper-to-bumper distance to the car ahead in the same lane (inf if none); ``ttc_front``
    [s] time to collision with it at current speeds (inf if not closing); ``x``, ``y`` [m]
    ego position; ``lane`` the ego lane's index; ``heading`` [rad] the ego's heading in the
    world frame; ``gap_rear`` [m] bumper-to-bumper distance to the car behind in the same lane
    (inf if none); ``speed_limit`` [m/s] the ego lane's speed limit (nan if it has none).
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
    return {
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
