"""Vision perception: OpenCV on the same pixel observation the CNN sees.

What it reads:

- ``obs``: the ``(C, H, W)`` uint8 stack of bird's-eye frames (gray, or RGB converted to gray
  with the observation's own weights), newest frame last. The frames are world-aligned and
  centred on the ego car (:class:`~envs.spec.ObservationSpec` ``scaling`` px/m, ``centering``),
  one frame per decision step;
- ``info["metrics"]["speed"]``: the ego car's speedometer [m/s] (its only non-pixel input; the
  pixels are ego-centred, so they show relative motion only).

It never reads ``info["scene"]`` or ``info["idm_action"]``, and has no learned part.

How (highway-env renders flat colours, so thresholds are exact; gray levels for the default
palette: road 99, lane markings 254, car bodies 146-177, car outlines 59):

- **vehicles**: pixels in ``VEHICLE_LEVELS`` -> connected components -> boxes; the component at
  the ego car's pixel is the ego car itself. A box clipped by the image border is completed with
  the nominal car size. Velocity: each box is matched to the nearest box of the previous frames
  of the stack (frame differencing over ``stack - 1`` decisions), giving the motion relative to
  the ego car, plus the ego's own velocity.
- **lanes**: marking pixels (``>= MARKING_LEVEL``) -> rows that hold a long run of marking
  pixels are lane boundaries (the road is straight and world-aligned in the supported
  scenarios); a row of few long runs is a solid road edge, of many short runs a dashed lane
  divider. Lanes lie between neighbouring boundaries, and beyond a dashed boundary at the edge
  of the view; the ego's road is the run of lanes around it joined by dashed boundaries.
- **heading**: the ego car's lateral drift relative to the boundaries over the stacked frames,
  divided by its speed, gives its heading relative to the road (rad, + towards the right).

Calibration constants were fitted against ground truth on ``highway`` frames (see
``driving perception``).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import cv2
import numpy as np

from agents.modular.perception import Detection, LaneEstimate, Percept
from agents.modular.planning import EGO_LENGTH_M, EGO_WIDTH_M
from envs.errors import UserError
from envs.scenarios import Scenario
from envs.spec import GRAY_WEIGHTS

VEHICLE_LEVELS: tuple[int, int] = (120, 240)
"""Gray levels (exclusive bounds) of car bodies: above the road (99), below markings (254)."""
MARKING_LEVEL = 240
"""Gray level at or above which a pixel is a lane marking."""
BOX_CENTRE_OFFSET_PX: tuple[float, float] = (1.25, 1.65)
"""Pixel offset (u, v) from the centre of a car's body pixels to its true centre (the outline is
drawn on one side more than the other); fitted on 100+ ground-truth boxes, std ~0.4 px."""
MIN_BOX_PIXELS = 3
"""Smallest component [px] kept as a (partly visible) car."""
BOUNDARY_MIN_FRACTION = 0.25
"""A row is a lane boundary when at least this fraction of its pixels are markings."""
DASHED_MIN_RUNS = 4
"""A boundary row with at least this many separate marking runs is dashed (a lane divider)."""
LANE_WIDTH_RANGE_M: tuple[float, float] = (2.5, 5.5)
"""Two boundaries this far apart [m] (exclusive) enclose a lane."""
DEFAULT_LANE_WIDTH_M = 4.0
"""Lane width [m] assumed when fewer than two boundaries are seen (highway-env's default)."""
LANE_SPAN_M: tuple[float, float, float] = (-10.0, 80.0, 5.0)
"""Start, stop and spacing [m] of the lane centre-line points along the road."""
MATCH_GATE_M: tuple[float, float] = (4.0, 2.0)
"""Largest per-frame relative displacement (along, across) [m] of a matched car."""
STRAIGHT_ROAD_SCENARIOS = ("highway", "highway-dense", "merge")
"""Scenarios whose road is straight and aligned with the image (what the lane finder assumes)."""


class VisionPerception:
    """Lane and vehicle perception from the pixel stack (see the module docstring).

    Args:
        scenario: the scenario (for its observation spec and decision period).
    """

    privileged = False

    def __init__(self, scenario: Scenario) -> None:
        self.check_supported(scenario)
        self.spec = scenario.observation
        self.dt = scenario.dt
        self.lanes_count = scenario.config.get("lanes_count")
        self.cu = self.spec.centering[0] * self.spec.width
        self.cv = self.spec.centering[1] * self.spec.height

    @staticmethod
    def check_supported(scenario: Scenario) -> None:
        """Raise :class:`UserError` for scenarios the lane finder cannot handle."""
        if scenario.name not in STRAIGHT_ROAD_SCENARIOS:
            raise UserError(
                f"modular-vision supports the straight-road scenarios "
                f"{', '.join(STRAIGHT_ROAD_SCENARIOS)}; not {scenario.name!r} "
                "(use modular-oracle there)"
            )
        if scenario.observation.stack < 2:
            raise UserError("modular-vision needs an observation stack of at least 2 frames")

    def reset(self) -> None:
        """Nothing to forget: the stacked frames carry the short history it uses."""

    # -- pixels -> frames -----------------------------------------------------------------------
    def frames(self, obs: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` uint8 observation -> ``(stack, H, W)`` gray frames, oldest first."""
        if self.spec.kind == "gray":
            return obs
        rgb = obs.reshape(self.spec.stack, 3, self.spec.height, self.spec.width).astype(np.float32)
        gray = np.tensordot(np.asarray(GRAY_WEIGHTS, dtype=np.float32), rgb, axes=([0], [1]))
        return gray.round().astype(np.uint8)

    # -- vehicles -----------------------------------------------------------------------------
    def boxes(self, frame: np.ndarray) -> np.ndarray:
        """Cars in one ``(H, W)`` gray frame -> ``(N, 4)`` ``[x, y, length, width]`` [m], image
        axes centred on the ego car (x to the right of the image, y down), ego car excluded."""
        lo, hi = VEHICLE_LEVELS
        mask = ((frame > lo) & (frame < hi)).astype(np.uint8)
        _n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        s, (h, w) = self.spec.scaling, frame.shape
        nominal = (s * EGO_LENGTH_M - 2, s * EGO_WIDTH_M - 2)  # body pixels inside the outline
        out = []
        for x0, y0, bw, bh, area in stats[1:]:
            if area < MIN_BOX_PIXELS:
                continue
            u, length = _centre(x0, bw, w, nominal[0], BOX_CENTRE_OFFSET_PX[0], s)
            v, width = _centre(y0, bh, h, nominal[1], BOX_CENTRE_OFFSET_PX[1], s)
            out.append([(u - self.cu) / s, (v - self.cv) / s, length, width])
        boxes = np.asarray(out, dtype=float).reshape(-1, 4)
        if len(boxes):  # the ego car: the box nearest the image centre, if it covers it
            k = int(np.argmin(np.hypot(boxes[:, 0], boxes[:, 1])))
            if abs(boxes[k, 0]) < EGO_LENGTH_M / 2 and abs(boxes[k, 1]) < EGO_WIDTH_M / 2:
                boxes = np.delete(boxes, k, axis=0)
        return boxes

    # -- lanes --------------------------------------------------------------------------------
    def boundaries(self, frame: np.ndarray) -> list[tuple[float, bool]]:
        """Lane boundaries in one frame: ``(y [m] relative to the ego car, dashed)`` top first."""
        marks = frame >= MARKING_LEVEL
        counts = marks.sum(axis=1)
        rows = np.flatnonzero(counts >= BOUNDARY_MIN_FRACTION * frame.shape[1])
        out: list[tuple[float, bool]] = []
        for group in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
            if not len(group):
                continue
            r = int(group[np.argmax(counts[group])])
            runs = int(np.count_nonzero(np.diff(marks[r].astype(np.int8)) == 1) + marks[r, 0])
            y = (group.mean() + 0.5 - self.cv) / self.spec.scaling
            out.append((float(y), runs >= DASHED_MIN_RUNS))
        return out

    def heading(self, history: list[list[tuple[float, bool]]], speed: float) -> float:
        """Ego heading [rad] relative to the road from boundary positions over the stack."""
        newest = [y for y, _ in history[-1]]
        if not newest or speed < 1.0:
            return 0.0
        times, drifts = [], []
        for k, bounds in enumerate(history):
            shifts = [y_new - y for y_new in newest for y, _ in bounds if abs(y_new - y) < 1.0]
            if shifts:  # ego lateral position in frame k relative to the newest frame [m]
                times.append((k - (len(history) - 1)) * self.dt)
                drifts.append(float(np.median(shifts)))
        if len(times) < 2:
            return 0.0
        slope = np.polyfit(np.asarray(times), np.asarray(drifts), 1)[0]  # lateral speed [m/s]
        return float(math.asin(np.clip(slope / speed, -0.5, 0.5)))

    def lanes(
        self, bounds: list[tuple[float, bool]], heading: float
    ) -> tuple[list[LaneEstimate], int]:
        """The lanes of the ego car's road (left-most first) and the ego lane's position in them.

        A lane lies between two neighbouring boundaries a lane width apart, or beyond a dashed
        boundary at the edge of the view. The ego's road is the run of lanes around the ego car
        joined by dashed boundaries: a solid line is a road edge, and lanes beyond it (an
        on-ramp, the verge between) belong to another road.
        """
        ys = [y for y, _ in bounds]
        widths = np.diff(ys)
        widths = widths[(widths > LANE_WIDTH_RANGE_M[0]) & (widths < LANE_WIDTH_RANGE_M[1])]
        width = float(np.median(widths)) if len(widths) else DEFAULT_LANE_WIDTH_M
        # (centre, left boundary dashed, right boundary dashed); None: beyond the view
        spans: list[tuple[float, bool | None, bool | None]] = [
            ((a + b) / 2, da, db)
            for (a, da), (b, db) in itertools.pairwise(bounds)
            if LANE_WIDTH_RANGE_M[0] < b - a < LANE_WIDTH_RANGE_M[1]
        ]
        if bounds and bounds[0][1]:
            spans.insert(0, (ys[0] - width / 2, None, True))
        if bounds and bounds[-1][1]:
            spans.append((ys[-1] + width / 2, True, None))
        if not spans:
            return [], -1
        ego = int(np.argmin([abs(c) for c, _, _ in spans]))
        lo = hi = ego
        while lo > 0 and spans[lo][1] and abs(spans[lo][0] - spans[lo - 1][0] - width) < 1.0:
            lo -= 1
        while (
            hi < len(spans) - 1
            and spans[hi][2]
            and abs(spans[hi + 1][0] - spans[hi][0] - width) < 1.0
        ):
            hi += 1
        road = spans[lo : hi + 1]
        # lane ids count from the left road edge when seen, else back from the right one
        first = -1
        if road[0][1] is False:
            first = 0
        elif road[-1][2] is False and self.lanes_count:
            first = int(self.lanes_count) - len(road)
        xs = np.arange(LANE_SPAN_M[0], LANE_SPAN_M[1] + 1e-9, LANE_SPAN_M[2])
        c, s = math.cos(heading), math.sin(heading)
        lanes = []
        for i, (yc, _, _) in enumerate(road):
            pts = np.stack([c * xs + s * yc, -s * xs + c * yc], axis=1)
            index = first + i if first >= 0 else -1
            lanes.append(LaneEstimate(index=index, width=width, centerline=pts))
        return lanes, ego - lo

    # -- the step -------------------------------------------------------------------------------
    def perceive(self, obs: np.ndarray, info: dict[str, Any]) -> Percept:
        """The percept of one step from ``obs`` and the speedometer ``info["metrics"]["speed"]``."""
        frames = self.frames(obs)
        speed = float(info["metrics"]["speed"])
        history = [self.boundaries(f) for f in frames]
        heading = self.heading(history, speed)
        lanes, ego_lane = self.lanes(history[-1], heading)
        boxes = [self.boxes(f) for f in frames]
        c, s = math.cos(heading), math.sin(heading)
        detections = []
        for x, y, length, width in boxes[-1]:
            rel = self._relative_velocity(np.array([x, y]), boxes)
            vx_img, vy_img = rel[0] + speed * c, rel[1] + speed * s
            detections.append(
                Detection(
                    x=float(c * x + s * y),
                    y=float(-s * x + c * y),
                    length=float(length),
                    width=float(width),
                    vx=float(c * vx_img + s * vy_img),
                    vy=float(-s * vx_img + c * vy_img),
                )
            )
        return Percept(
            detections=detections,
            lanes=lanes,
            ego_lane=ego_lane,
            ego_speed=speed,
            heading=heading,  # the road is aligned with the image
        )

    def _relative_velocity(self, position: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
        """Velocity [m/s] relative to the ego car of the box at ``position`` in the newest frame,
        by chaining nearest-box matches back through the older frames."""
        current, steps = position, 0
        for older in reversed(boxes[:-1]):
            if not len(older):
                break
            d = older[:, :2] - current
            ok = (np.abs(d[:, 0]) <= MATCH_GATE_M[0]) & (np.abs(d[:, 1]) <= MATCH_GATE_M[1])
            if not ok.any():
                break
            k = int(np.flatnonzero(ok)[np.argmin(np.hypot(d[ok, 0], d[ok, 1]))])
            current, steps = older[k, :2], steps + 1
        if steps == 0:
            return np.zeros(2)
        return (position - current) / (steps * self.dt)


def _centre(
    start: int, size: int, limit: int, nominal: float, offset: float, scaling: float
) -> tuple[float, float]:
    """Centre [px] and size [m] along one image axis of a body spanning pixels
    ``start .. start + size - 1`` in an image ``limit`` px wide; a body cut by the border is
    placed from its visible inner end with the ``nominal`` body size [px]."""
    end = start + size - 1
    if start == 0 and end < limit - 1 and size < nominal:
        return end - (nominal - 1) / 2 + offset, (nominal + 2) / scaling
    if end == limit - 1 and start > 0 and size < nominal:
        return start + (nominal - 1) / 2 + offset, (nominal + 2) / scaling
    return start + (size - 1) / 2 + offset, (size + 2) / scaling
