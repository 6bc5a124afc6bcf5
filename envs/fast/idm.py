"""highway-env's IDM longitudinal model and lane-keeping steering, for many vehicles at once.

Each function evaluates, element-wise, the same expression as the stock method it names, in the
same order and with the same numpy ufuncs, so each element comes out bit-identical to the stock
scalar result (numpy's SIMD ufuncs give the same value per element whatever the array length;
``np.vecdot`` matches ``np.dot`` of two 2-vectors, which BLAS computes with a fused multiply-add).
All inputs are ``(n,)`` float64 arrays; the lanes are straight lanes along +x (see
:mod:`envs.fast.lanes`) or, where a function says so, any lane of a
:class:`~envs.fast.geometry.LaneGeometry`. The parameters that the stock methods read from
``self`` (class constants, or instance attributes where a vehicle has its own) are read from
each vehicle (:class:`DriverParameters`).
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import RoadObject

# The stock expressions' constants as numpy scalars: the same values (so the same results), but
# numpy multiplies an array by a numpy scalar faster than by a Python float.
_F = np.float64
_ONE, _TWO, _PI, _TWO_PI = _F(1), _F(2), _F(np.pi), _F(2 * np.pi)
_QUARTER_PI = _F(np.pi / 4)

PARAMETERS = (
    "COMFORT_ACC_MAX",
    "COMFORT_ACC_MIN",
    "DISTANCE_WANTED",
    "TIME_WANTED",
    "DELTA",
    "ACC_MAX",
    "KP_LATERAL",
    "KP_HEADING",
    "MAX_STEERING_ANGLE",
    "LENGTH",
)
"""The attributes of ``self`` that ``IDMVehicle.acceleration``/``desired_gap``, ``act``'s clips
and ``steering_control`` read (on a straight lane ``TAU_PURSUIT`` drops out: ``heading_at`` is
constant). The others that ``act`` and ``step`` read (``POLITENESS``, ``LANE_CHANGE_*``,
``target_speed``, ``MAX_SPEED``...) are read from the vehicle where they are used."""

_GATHER = operator.attrgetter(*PARAMETERS)


class DriverParameters:
    """The :data:`PARAMETERS` of ``n`` vehicles, as ``(n,)`` float64 arrays named in lower case
    (``comfort_acc_max`` [m/s^2], ``time_wanted`` [s], ``length`` [m], ...), read from each
    vehicle now: an instance attribute where the vehicle has one, else its class's constant.

    Attributes:
        gap_speed_divisor: ``2 * sqrt(-COMFORT_ACC_MAX * COMFORT_ACC_MIN)`` [m/s^2], as
            ``desired_gap`` computes it.
    """

    def __init__(self, vehicles: list[IDMVehicle]) -> None:
        values = np.array(list(map(_GATHER, vehicles)), dtype=float).reshape(-1, len(PARAMETERS))
        (
            self.comfort_acc_max,
            self.comfort_acc_min,
            self.distance_wanted,
            self.time_wanted,
            self.delta,
            self.acc_max,
            self.kp_lateral,
            self.kp_heading,
            self.max_steering_angle,
            self.length,
        ) = values.T
        self.gap_speed_divisor = _TWO * np.sqrt(-self.comfort_acc_max * self.comfort_acc_min)


@functools.cache
def _is_vehicle(kind: type) -> bool:
    """``isinstance(obj, Vehicle)`` for ``obj`` of class ``kind`` (cached: ABC checks are slow)."""
    return issubclass(kind, Vehicle)


@functools.cache
def _stock_kinematics(kind: type) -> bool:
    """Whether objects of class ``kind`` have highway-env's ``direction``, ``velocity`` and
    ``lane_distance_to``, which :class:`AccelerationBatch` evaluates in place of the calls."""
    return (
        kind.direction is RoadObject.direction
        and kind.velocity in (RoadObject.velocity, Vehicle.velocity)
        and kind.lane_distance_to is RoadObject.lane_distance_to
    )


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, 2)`` array of rows ``(a[i], b[i])``."""
    out = np.empty((len(a), 2))
    out[:, 0] = a
    out[:, 1] = b
    return out


def not_zero(x: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    """``highway_env.utils.not_zero`` element-wise."""
    big = np.abs(x) > eps
    if big.all():
        return x
    return np.where(big, x, np.where(x >= 0, eps, -eps))


def wrap_to_pi(x: np.ndarray) -> np.ndarray:
    """``highway_env.utils.wrap_to_pi`` element-wise [rad]."""
    return ((x + _PI) % _TWO_PI) - _PI


def steering(
    lateral: np.ndarray,
    lane_heading: np.ndarray,
    heading: np.ndarray,
    speed: np.ndarray,
    drivers: DriverParameters,
) -> np.ndarray:
    """``ControlledVehicle.steering_control`` then IDMVehicle's clip [rad].

    Args:
        lateral: lateral coordinate [m] in the target lane.
        lane_heading: the target lane's heading [rad] ``TAU_PURSUIT`` seconds ahead
            (``heading_at(s + speed * TAU_PURSUIT)``; on a straight lane its constant heading).
        heading: vehicle heading [rad].
        speed: vehicle speed [m/s].
        drivers: the vehicles' parameters.
    """
    max_steering = drivers.max_steering_angle
    lateral_speed_command = -drivers.kp_lateral * lateral
    speed_nz = not_zero(speed)
    heading_command = np.arcsin(np.clip(lateral_speed_command / speed_nz, -1, 1))
    heading_ref = lane_heading + np.clip(heading_command, -_QUARTER_PI, _QUARTER_PI)
    heading_rate_command = drivers.kp_heading * wrap_to_pi(heading_ref - heading)
    slip_angle = np.arcsin(np.clip(drivers.length / _TWO / speed_nz * heading_rate_command, -1, 1))
    angle = np.clip(np.arctan(_TWO * np.tan(slip_angle)), -max_steering, max_steering)
    return np.clip(angle, -max_steering, max_steering)


def free_road_acceleration(
    speed: np.ndarray, target_speed: np.ndarray, delta: np.ndarray, comfort_acc_max: np.ndarray
) -> np.ndarray:
    """The IDM term without a leader [m/s^2] (``target_speed`` already clipped to the limit)."""
    ratio = np.maximum(speed, 0) / np.abs(not_zero(target_speed))
    return comfort_acc_max * (_ONE - np.power(ratio, delta))


def interaction_acceleration(
    gap: np.ndarray,
    speed: np.ndarray,
    heading: np.ndarray,
    front_speed: np.ndarray,
    front_heading: np.ndarray,
    drivers: DriverParameters,
    rows: np.ndarray,
) -> np.ndarray:
    """The IDM braking term due to a leader [m/s^2], subtracted from the free-road term.

    Args:
        gap: ``lane_distance_to(front)`` [m] along the follower's lane.
        speed, heading: follower state.
        front_speed, front_heading: leader state.
        drivers, rows: the parameters of the vehicle whose IDM is evaluated, row ``rows[i]``.
    """
    cos_e, sin_e = np.cos(heading), np.sin(heading)
    relative = _pairs(
        speed * cos_e - front_speed * np.cos(front_heading),
        speed * sin_e - front_speed * np.sin(front_heading),
    )
    dv = np.vecdot(relative, _pairs(cos_e, sin_e))
    d_star = (
        drivers.distance_wanted[rows]
        + speed * drivers.time_wanted[rows]
        + speed * dv / drivers.gap_speed_divisor[rows]
    )
    return drivers.comfort_acc_max[rows] * np.power(d_star / not_zero(gap), 2)


class AccelerationBatch:
    """Collects ``decider.acceleration(ego_vehicle=ego, front_vehicle=front)`` queries and answers
    them in one vectorised pass, each bit-identical to the stock call.

    Args:
        lane_of: maps a lane object (by ``id``) to its :class:`~envs.fast.lanes.AxisLane` (or,
            with ``longitudinal``, its :class:`~envs.fast.geometry.GeoLane`).
        deciders: the parameters of the vehicles whose ``acceleration`` is queried (each query
            names its decider's row).
        longitudinal: ``(object, lane) -> lane.lane.local_coordinates(object.position)[0]``
            [m], for lanes other than straight lanes along +x (``lane_distance_to`` is the
            difference of two of these); ``None``: ``x - x0`` on an :class:`AxisLane`.
    """

    def __init__(
        self,
        lane_of: dict,
        deciders: DriverParameters,
        longitudinal: Callable[[RoadObject, Any], float] | None = None,
    ) -> None:
        self.lane_of = lane_of
        self.deciders = deciders
        self.longitudinal = longitudinal
        self._rows: list[tuple] = []
        self._values: list[float] = []

    def add(self, row: int, decider: IDMVehicle, ego, front) -> int:
        """Queue one query of ``decider`` (row ``row`` of the deciders' parameters); returns its
        position in :meth:`evaluate`'s list."""
        k = len(self._values)
        if not ego or not _is_vehicle(type(ego)):
            self._values.append(0)
            return k
        axis = self.lane_of.get(id(ego.lane))
        if (
            axis is None  # no lane, or one the table does not know
            or not _stock_kinematics(type(ego))
            or (front and not _stock_kinematics(type(front)))
        ):
            self._values.append(decider.acceleration(ego_vehicle=ego, front_vehicle=front))
            return k
        self._values.append(math.nan)
        self._rows.append((k, row, ego, front, axis))
        return k

    def evaluate(self) -> list[float]:
        """The answers, in the order of :meth:`add`."""
        values, rows, deciders = self._values, self._rows, self.deciders
        if not rows:
            return values
        speed = np.array([r[2].speed for r in rows], dtype=float)
        heading = np.array([r[2].heading for r in rows], dtype=float)
        target = np.array([getattr(r[2], "target_speed", 0) for r in rows], dtype=float)
        limits = [r[4].lane.speed_limit for r in rows]
        limited = np.array([limit is not None for limit in limits])
        if limited.any():
            limit = np.array([np.inf if lim is None else lim for lim in limits], dtype=float)
            target = np.where(limited, np.clip(target, 0, limit), target)
        decider_rows = np.array([r[1] for r in rows])
        accel = free_road_acceleration(
            speed,
            target,
            deciders.delta[decider_rows],
            deciders.comfort_acc_max[decider_rows],
        )
        led = [i for i, r in enumerate(rows) if r[3]]
        if led:
            fronts = [rows[i][3] for i in led]
            if self.longitudinal is None:
                x0 = np.array([rows[i][4].x0 for i in led])
                ego_x = np.array([rows[i][2].position[0] for i in led], dtype=float)
                front_x = np.array([f.position[0] for f in fronts], dtype=float)
                gap = (front_x - x0) - (ego_x - x0)
            else:
                at = self.longitudinal
                gap = np.array([at(rows[i][3], rows[i][4]) for i in led], dtype=float) - np.array(
                    [at(rows[i][2], rows[i][4]) for i in led], dtype=float
                )
            led_a = np.array(led)
            accel[led_a] -= interaction_acceleration(
                gap,
                speed[led_a],
                heading[led_a],
                np.array([f.speed for f in fronts], dtype=float),
                np.array([f.heading for f in fronts], dtype=float),
                deciders,
                decider_rows[led_a],
            )
        for r, a in zip(rows, accel.tolist(), strict=True):
            values[r[0]] = a
        return values
