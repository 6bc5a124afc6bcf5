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
    """

    x: float
    y: float
    length: float = 5.0
    width: float = 2.0
    vx: float = 0.0
    vy: float = 0.0
    track: int | None = None

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
    """

    detections: list[Detection] = field(default_factory=list)
    lanes: list[LaneEstimate] = field(default_factory=list)
    ego_lane: int = -1
    ego_speed: float = 0.0
    speed_limit: float = math.nan


def world_to_ego(points: np.ndarray, origin: np.ndarray, heading: float) -> np.ndarray:
    """World points ``(..., 2)`` [m] -> the ego frame of a car at ``origin`` facing ``heading``."""
    c, s = math.cos(heading), math.sin(heading)
    d = np.asarray(points, dtype=float) - origin
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def project(polyline: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """Project ``point`` ``(2,)`` onto ``polyline`` ``(K, 2)``.

    Returns ``(s, d)``: arc length [m] from the polyline's first point to the foot of the
    perpendicular, and the signed lateral offset [m] of the point (positive = to the right of
    the direction of travel). Beyond the ends the first/last segment is extended.
    """
    a, b = polyline[:-1], polyline[1:]
    seg = b - a
    seg_len = np.maximum(np.linalg.norm(seg, axis=1), 1e-9)
    t = np.einsum("ij,ij->i", point - a, seg) / seg_len**2
    t_in = t.copy()
    t_in[1:-1] = np.clip(t[1:-1], 0.0, 1.0)
    t_in[0] = min(t[0], 1.0) if len(t) > 1 else t[0]
    if len(t) > 1:
        t_in[-1] = max(t[-1], 0.0)
    feet = a + seg * t_in[:, None]
    dist = np.linalg.norm(point - feet, axis=1)
    k = int(np.argmin(dist))
    start = float(np.concatenate([[0.0], np.cumsum(seg_len)])[k])
    s = start + t_in[k] * seg_len[k]
    rel = point - a[k]
    d = (seg[k, 0] * rel[1] - seg[k, 1] * rel[0]) / seg_len[k]
    return float(s), float(d)


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
        )
