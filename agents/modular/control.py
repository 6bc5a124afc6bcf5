"""Control: turn the planner's reference path and acceleration into a normalised action.

- **Lateral: pure pursuit** (Coulter 1992) from the rear axle. highway-env's kinematic bicycle
  moves the car's centre at the slip angle ``beta`` (``tan(beta) = tan(delta) / 2``) and turns at
  ``v sin(beta) / (L/2)``; the point ``L/2`` behind the centre then moves exactly along the
  heading and turns at ``v_r tan(delta) / L``: a rear-axle bicycle of wheelbase ``L`` (the car
  length, 5 m), for which pure pursuit is exact on a circle (no corner cutting). A look-ahead
  point is taken on the reference path at distance
  ``L_d = clip(lookahead_time * v + lookahead_min, .., lookahead_max)`` from the rear axle; the
  arc through it has curvature ``kappa = 2 sin(alpha) / L_d`` (``alpha``: the point's bearing)
  and the front-wheel angle is ``delta = atan(wheelbase * kappa)``. The curvature is capped so
  that the lateral acceleration stays below ``max_lateral_accel`` (a comfort limit that also
  keeps lane changes smooth for imitation).
- **Longitudinal**: the planner's IDM acceleration, clipped to the action range.

Sign convention: ego frame y to the right; positive steering turns right (highway-env's y-down
world), so a path to the right (alpha > 0) gives positive steering.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from agents.modular.perception import project
from envs.spec import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD


@dataclass(frozen=True)
class ControlGains:
    """Controller gains.

    Tuned on ``highway`` validation seeds: with the look-ahead ``0.7 s * v + 6 m`` (about 22 m
    at 23 m/s) the oracle keeps 0.05 m from the lane centre with a steering jerk of 0.01 rad/s²
    (highway-env's own driver: 0.03 m, 0.19 rad/s²), and the 4 m/s² cap makes a lane change
    take about 3 s. Racetrack uses ``0.3 s * v + 3 m`` and 12 m/s² (see
    :func:`agents.modular.settings_for`).

    Args:
        wheelbase: bicycle-model wheelbase [m] (highway-env: the car length); the rear axle is
            half of it behind the car's centre.
        lookahead_time: look-ahead distance per unit speed [s].
        lookahead_min: look-ahead distance added at any speed [m].
        lookahead_max: longest look-ahead [m].
        max_lateral_accel: cap on ``v² * kappa`` [m/s²].
    """

    wheelbase: float = 5.0
    lookahead_time: float = 0.7
    lookahead_min: float = 6.0
    lookahead_max: float = 40.0
    max_lateral_accel: float = 4.0

    def to_dict(self) -> dict[str, float]:
        """The gains as a dict (for ``describe()``)."""
        return asdict(self)


def lookahead_point(path: np.ndarray, distance: float) -> np.ndarray:
    """The first point of ``path`` ``(K, 2)`` at ``distance`` [m] from the origin (interpolated).

    If the whole path is nearer, its last point; if it starts beyond, its first point.
    """
    r = np.linalg.norm(path, axis=1)
    beyond = np.flatnonzero(r >= distance)
    if len(beyond) == 0:
        return path[-1]
    k = int(beyond[0])
    if k == 0:
        return path[0]
    a, b = path[k - 1], path[k]
    ra, rb = r[k - 1], r[k]
    t = (distance - ra) / max(rb - ra, 1e-9)
    return a + t * (b - a)


class Controller:
    """Pure pursuit + acceleration pass-through (see the module docstring).

    Args:
        gains: the controller gains.
    """

    def __init__(self, gains: ControlGains) -> None:
        self.gains = gains

    def control(
        self, path: np.ndarray, accel: float, speed: float, target_speed: float
    ) -> tuple[float, float, dict[str, float]]:
        """``path`` ``(K, 2)`` ego-frame [m], ``accel`` [m/s²], ``speed`` [m/s] ->
        ``(accel, steer)`` normalised to [-1, 1] and a dict of the controller's terms."""
        g = self.gains
        ld = min(max(g.lookahead_time * speed + g.lookahead_min, g.lookahead_min), g.lookahead_max)
        rear_path = path + np.array([g.wheelbase / 2, 0.0])  # path seen from the rear axle
        target = lookahead_point(rear_path, ld)
        dist = max(float(np.hypot(*target)), 1e-6)
        alpha = math.atan2(target[1], target[0])
        curvature = 2.0 * math.sin(alpha) / dist
        limit = g.max_lateral_accel / max(speed, 1.0) ** 2
        curvature_cmd = min(max(curvature, -limit), limit)
        steer = math.atan(g.wheelbase * curvature_cmd)
        # cross-track and heading error w.r.t. the path's first segment
        tangent = path[min(1, len(path) - 1)] - path[0]
        path_heading = math.atan2(tangent[1], tangent[0]) if np.any(tangent) else 0.0
        _, cross = project(path, np.zeros(2))  # ego offset to the right of the path
        accel_n = float(np.clip(accel / ACCELERATION_RANGE_MPS2[1], -1.0, 1.0))
        steer_n = float(np.clip(steer / STEERING_RANGE_RAD[1], -1.0, 1.0))
        terms = {
            "cross_track_error": float(cross),
            "heading_error": float(-path_heading),
            "lookahead": float(ld),
            "alpha": float(alpha),
            "curvature": float(curvature),
            "curvature_cmd": float(curvature_cmd),
            "steer_rad": float(steer),
            "steer": steer_n,
            "accel_mps2": float(accel),
            "accel": accel_n,
            "speed": float(speed),
            "speed_error": float(target_speed - speed),
        }
        return accel_n, steer_n, terms
