"""Perception: what the modular agent knows about the world at one decision step.

Everything here is in the **ego frame**: origin at the ego car's centre, ``x`` forward along its
heading, ``y`` to its right [m] (the same handedness as highway-env's world, whose ``y`` grows
towards the right-hand lanes). Velocities are over ground, expressed in ego axes [m/s].

Two perceptions fill the same :class:`Percept`:

- :class:`OraclePerception` reads the ground truth ``info["scene"]`` (privileged);
- :class:`~agents.modular.vision.VisionPerception` reads the pixels (see that module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.scene import Scene


@dataclass
class Detection:
    """One other vehicle, in the ego frame.

    Attributes:
        x, y: centre [m] (x forward, y right).
        length, width: body size [m] (along and across its own heading).
        vx, vy: velocity over ground in ego axes [m/s].
        track: a track id when the perception keeps one (else None).
        predicted: ``(M, 2)`` its predicted centre positions [m] at
            :data:`envs.scene.PREDICTION_TIMES_S`, ego frame, where the perception knows them
            (the oracle, on scenarios with a route); else None.
    """

    x: float
    y: float
    length: float = 5.0
    width: float = 2.0
    vx: float = 0.0
    vy: float = 0.0
    track: int | None = None
    predicted: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the keys :mod:`driving.overlay` draws)."""
        return {
            "x": self.x,
            "y": self.y,
            "length": self.length,
            "width": self.width,
            "vx": self.vx,
            "vy": self.vy,
            "track": self.track,
        }


@dataclass
class LaneEstimate:
    """One lane near the ego car.

    Attributes:
        index: lane id, left-most lane 0 (-1 when the perception cannot tell).
        width: lane width [m].
        centerline: ``(K, 2)`` centre points in the ego frame [m], ordered along the road.
    """

    index: int
    width: float
    centerline: np.ndarray


@dataclass
class Percept:
    """The output of one perception step.

    Attributes:
        detections: other vehicles.
        lanes: the lanes of the ego's road, left-most first.
        ego_lane: position in ``lanes`` of the lane the ego car is in (-1 if none).
        ego_speed: ego speed [m/s].
        speed_limit: the road's speed limit [m/s] (nan when unknown).
        heading: the ego heading [rad] relative to the image's x axis (the world's x axis, since
            the observation is world-aligned); rotate ego-frame points by it to draw them on
            the observation.
        route_remaining_m: the distance [m] left along the route to where it leaves the ego's
            road (:attr:`envs.scene.Scene.route_remaining`), where the perception knows it (the
            oracle, on scenarios with a route); else None.
    """

    detections: list[Detection] = field(default_factory=list)
    lanes: list[LaneEstimate] = field(default_factory=list)
    ego_lane: int = -1
    ego_speed: float = 0.0
    speed_limit: float = math.nan
    heading: float = 0.0
    route_remaining_m: float | None = None


def world_to_ego(points: np.ndarray, origin: np.ndarray, heading: float) -> np.ndarray:
    """World points ``(..., 2)`` [m] -> the ego frame of a car at ``origin`` facing ``heading``."""
    c, s = math.cos(heading), math.sin(heading)
    d = np.asarray(points, dtype=float) - origin
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def project_points(polyline: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``points`` ``(N, 2)`` onto ``polyline`` ``(K, 2)``, ``K >= 2``.

    Returns ``(s, d)``, each ``(N,)``: the arc length [m] from the polyline's first point to the
    foot of the perpendicular, and the signed lateral offset [m] (positive = to the right of the
    direction of travel). Beyond its ends the first and last segments are extended.
    """
    a, seg = polyline[:-1], np.diff(polyline, axis=0)  # (M, 2)
    seg_len = np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-9)
    rel = points[:, None, :] - a[None]  # (N, M, 2)
    t = (rel[..., 0] * seg[:, 0] + rel[..., 1] * seg[:, 1]) / seg_len**2
    low = np.zeros(len(seg))
    high = np.ones(len(seg))
    low[0], high[-1] = -np.inf, np.inf  # extend the end segments
    t = np.clip(t, low, high)
    off = rel - seg[None] * t[..., None]
    k = np.argmin(off[..., 0] ** 2 + off[..., 1] ** 2, axis=1)  # nearest segment per point
    rows = np.arange(len(points))
    starts = np.concatenate([[0.0], np.cumsum(seg_len)])[k]
    s = starts + t[rows, k] * seg_len[k]
    r = rel[rows, k]
    d = (seg[k, 0] * r[:, 1] - seg[k, 1] * r[:, 0]) / seg_len[k]
    return s, d


def project(polyline: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """:func:`project_points` for one point ``(2,)``: ``(s, d)`` [m]."""
    s, d = project_points(polyline, np.asarray(point, dtype=float).reshape(1, 2))
    return float(s[0]), float(d[0])


class OraclePerception:
    """Perfect perception from the ground-truth :class:`~envs.scene.Scene` in ``info["scene"]``."""

    privileged = True

    def reset(self) -> None:
        """Nothing to forget: the oracle is stateless."""

    def perceive(self, obs: np.ndarray, info: dict[str, Any]) -> Percept:
        """The percept of one step; ``obs`` is ignored, ``info["scene"]`` is read."""
        scene: Scene = info["scene"]
        ego = scene.ego
        origin, heading = ego.position, ego.heading
        c, s = math.cos(heading), math.sin(heading)
        detections = []
        for v in scene.vehicles:
            x, y = world_to_ego(v.position, origin, heading)
            vel = v.velocity
            rel_heading = v.heading - heading
            cos_h, sin_h = abs(math.cos(rel_heading)), abs(math.sin(rel_heading))
            detections.append(
                Detection(
                    x=float(x),
                    y=float(y),
                    length=v.length * cos_h + v.width * sin_h,
                    width=v.length * sin_h + v.width * cos_h,
                    vx=float(c * vel[0] + s * vel[1]),
                    vy=float(-s * vel[0] + c * vel[1]),
                    predicted=(
                        world_to_ego(v.predicted, origin, heading)
                        if v.predicted is not None
                        else None
                    ),
                )
            )
        lanes = [
            LaneEstimate(
                index=lane.lane,
                width=lane.width,
                centerline=world_to_ego(lane.centerline, origin, heading),
            )
            for lane in scene.lanes
        ]
        limits = [lane.speed_limit for lane in scene.lanes if not math.isnan(lane.speed_limit)]
        return Percept(
            detections=detections,
            lanes=lanes,
            ego_lane=scene.ego_lane,
            ego_speed=ego.speed,
            speed_limit=max(limits) if limits else math.nan,
            heading=heading,
            route_remaining_m=scene.route_remaining,
        )
