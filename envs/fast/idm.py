"""highway-env's IDM longitudinal model and lane-keeping steering, for many vehicles at once.

Each function evaluates, element-wise, the same expression as the stock method it names, in the
same order and with the same numpy ufuncs, so each element comes out bit-identical to the stock
scalar result (numpy's SIMD ufuncs give the same value per element whatever the array length;
``np.vecdot`` matches ``np.dot`` of two 2-vectors, which BLAS computes with a fused multiply-add).
All inputs are ``(n,)`` float64 arrays; the lanes are straight lanes along +x (see
:mod:`envs.fast.lanes`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

_IDM = IDMVehicle
# The stock expressions' constants as numpy scalars: the same values (so the same results), but
# numpy multiplies an array by a numpy scalar faster than by a Python float.
_F = np.float64
_ONE, _TWO, _PI, _TWO_PI = _F(1), _F(2), _F(np.pi), _F(2 * np.pi)
_QUARTER_PI = _F(np.pi / 4)
_MINUS_KP_LATERAL = _F(-_IDM.KP_LATERAL)
_KP_HEADING = _F(_IDM.KP_HEADING)
_HALF_LENGTH = _F(_IDM.LENGTH / 2)
_MAX_STEERING = _F(_IDM.MAX_STEERING_ANGLE)
_COMFORT_ACC_MAX = _F(_IDM.COMFORT_ACC_MAX)
_DISTANCE_WANTED = _F(_IDM.DISTANCE_WANTED)
_TIME_WANTED = _F(_IDM.TIME_WANTED)
_GAP_SPEED_DIVISOR = 2 * np.sqrt(-_IDM.COMFORT_ACC_MAX * _IDM.COMFORT_ACC_MIN)


@functools.cache
def _is_vehicle(kind: type) -> bool:
    """``isinstance(obj, Vehicle)`` for ``obj`` of class ``kind`` (cached: ABC checks are slow)."""
    return issubclass(kind, Vehicle)


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
    lateral: np.ndarray, lane_heading: np.ndarray, heading: np.ndarray, speed: np.ndarray
) -> np.ndarray:
    """``ControlledVehicle.steering_control`` then IDMVehicle's clip, on a straight lane [rad].

    Args:
        lateral: lateral coordinate [m] in the target lane.
        lane_heading: the target lane's heading [rad].
        heading: vehicle heading [rad].
        speed: vehicle speed [m/s].
    """
    lateral_speed_command = _MINUS_KP_LATERAL * lateral
    speed_nz = not_zero(speed)
    heading_command = np.arcsin(np.clip(lateral_speed_command / speed_nz, -1, 1))
    heading_ref = lane_heading + np.clip(heading_command, -_QUARTER_PI, _QUARTER_PI)
    heading_rate_command = _KP_HEADING * wrap_to_pi(heading_ref - heading)
    slip_angle = np.arcsin(np.clip(_HALF_LENGTH / speed_nz * heading_rate_command, -1, 1))
    angle = np.clip(np.arctan(_TWO * np.tan(slip_angle)), -_MAX_STEERING, _MAX_STEERING)
    return np.clip(angle, -_MAX_STEERING, _MAX_STEERING)


def free_road_acceleration(
    speed: np.ndarray, target_speed: np.ndarray, delta: np.ndarray
) -> np.ndarray:
    """The IDM term without a leader [m/s^2] (``target_speed`` already clipped to the limit)."""
    ratio = np.maximum(speed, 0) / np.abs(not_zero(target_speed))
    return _COMFORT_ACC_MAX * (_ONE - np.power(ratio, delta))


def interaction_acceleration(
    gap: np.ndarray,
    speed: np.ndarray,
    heading: np.ndarray,
    front_speed: np.ndarray,
    front_heading: np.ndarray,
) -> np.ndarray:
    """The IDM braking term due to a leader [m/s^2], subtracted from the free-road term.

    Args:
        gap: ``lane_distance_to(front)`` [m] along the follower's lane.
        speed, heading: follower state.
        front_speed, front_heading: leader state.
    """
    cos_e, sin_e = np.cos(heading), np.sin(heading)
    relative = _pairs(
        speed * cos_e - front_speed * np.cos(front_heading),
        speed * sin_e - front_speed * np.sin(front_heading),
    )
    dv = np.vecdot(relative, _pairs(cos_e, sin_e))
    d_star = _DISTANCE_WANTED + speed * _TIME_WANTED + speed * dv / _GAP_SPEED_DIVISOR
    return _COMFORT_ACC_MAX * np.power(d_star / not_zero(gap), 2)


class AccelerationBatch:
    """Collects ``decider.acceleration(ego_vehicle=ego, front_vehicle=front)`` queries and answers
    them in one vectorised pass, each bit-identical to the stock call.

    Args:
        lane_of: maps a lane object (by ``id``) to its :class:`~envs.fast.lanes.AxisLane`.
    """

    def __init__(self, lane_of: dict) -> None:
        self.lane_of = lane_of
        self._rows: list[tuple] = []
        self._values: list[float] = []

    def add(self, decider: IDMVehicle, ego, front) -> int:
        """Queue one query; returns its position in :meth:`evaluate`'s list."""
        k = len(self._values)
        if not ego or not _is_vehicle(type(ego)):
            self._values.append(0)
            return k
        axis = self.lane_of.get(id(ego.lane))
        if axis is None:  # no lane, or one the table does not know: the stock call
            self._values.append(decider.acceleration(ego_vehicle=ego, front_vehicle=front))
            return k
        self._values.append(math.nan)
        self._rows.append((k, decider, ego, front, axis))
        return k

    def evaluate(self) -> list[float]:
        """The answers, in the order of :meth:`add`."""
        values, rows = self._values, self._rows
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
        delta = np.array([r[1].DELTA for r in rows], dtype=float)
        accel = free_road_acceleration(speed, target, delta)
        led = [i for i, r in enumerate(rows) if r[3]]
        if led:
            fronts = [rows[i][3] for i in led]
            x0 = np.array([rows[i][4].x0 for i in led])
            ego_x = np.array([rows[i][2].position[0] for i in led], dtype=float)
            front_x = np.array([f.position[0] for f in fronts], dtype=float)
            led_a = np.array(led)
            accel[led_a] -= interaction_acceleration(
                (front_x - x0) - (ego_x - x0),
                speed[led_a],
                heading[led_a],
                np.array([f.speed for f in fronts], dtype=float),
                np.array([f.heading for f in fronts], dtype=float),
            )
        for r, a in zip(rows, accel.tolist(), strict=True):
            values[r[0]] = a
        return values
