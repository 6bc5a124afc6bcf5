"""highway-env's IDM longitudinal model and lane-keeping steering, for many vehicles at once.

Each function evaluates, element-wise, the same expression as the stock method it names, in the
same order and with the same numpy ufuncs, so each element comes out bit-identical to the stock
scalar result (numpy's SIMD ufuncs give the same value per element whatever the array length;
``np.vecdot`` matches ``np.dot`` of two 2-vectors, which BLAS computes with a fused multiply-add).
All inputs are ``(n,)`` float64 arrays; the lanes are straight lanes along +x (see
:mod:`envs.fast.lanes`).
"""

from __future__ import annotations

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle

_IDM = IDMVehicle
_QUARTER_PI = np.pi / 4
_GAP_SPEED_DIVISOR = 2 * np.sqrt(-_IDM.COMFORT_ACC_MAX * _IDM.COMFORT_ACC_MIN)


def not_zero(x: np.ndarray, eps: float = 1e-2) -> np.ndarray:
    """``highway_env.utils.not_zero`` element-wise."""
    return np.where(np.abs(x) > eps, x, np.where(x >= 0, eps, -eps))


def wrap_to_pi(x: np.ndarray) -> np.ndarray:
    """``highway_env.utils.wrap_to_pi`` element-wise [rad]."""
    return ((x + np.pi) % (2 * np.pi)) - np.pi


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
    lateral_speed_command = -_IDM.KP_LATERAL * lateral
    speed_nz = not_zero(speed)
    heading_command = np.arcsin(np.clip(lateral_speed_command / speed_nz, -1, 1))
    heading_ref = lane_heading + np.clip(heading_command, -_QUARTER_PI, _QUARTER_PI)
    heading_rate_command = _IDM.KP_HEADING * wrap_to_pi(heading_ref - heading)
    slip_angle = np.arcsin(np.clip(_IDM.LENGTH / 2 / speed_nz * heading_rate_command, -1, 1))
    angle = np.clip(np.arctan(2 * np.tan(slip_angle)), -_IDM.MAX_STEERING_ANGLE,
                    _IDM.MAX_STEERING_ANGLE)
    return np.clip(angle, -_IDM.MAX_STEERING_ANGLE, _IDM.MAX_STEERING_ANGLE)


def free_road_acceleration(
    speed: np.ndarray, target_speed: np.ndarray, delta: np.ndarray
) -> np.ndarray:
    """The IDM term without a leader [m/s^2] (``target_speed`` already clipped to the limit)."""
    ratio = np.maximum(speed, 0) / np.abs(not_zero(target_speed))
    return _IDM.COMFORT_ACC_MAX * (1 - np.power(ratio, delta))


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
    relative = np.stack(
        [speed * cos_e - front_speed * np.cos(front_heading),
         speed * sin_e - front_speed * np.sin(front_heading)],
        axis=1,
    )
    dv = np.vecdot(relative, np.stack([cos_e, sin_e], axis=1))
    d_star = _IDM.DISTANCE_WANTED + speed * _IDM.TIME_WANTED + speed * dv / _GAP_SPEED_DIVISOR
    return _IDM.COMFORT_ACC_MAX * np.power(d_star / not_zero(gap), 2)
