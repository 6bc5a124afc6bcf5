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
palette: road 99, lane markings 254, car bodies 146-177, car outlines 59; a frame degraded by a
sensor nuisance is first restored to that palette by :mod:`agents.modular.restoration`):

- **vehicles**: pixels in ``VEHICLE_LEVELS`` -> connected components -> boxes; the component at
  the ego car's pixel is the ego car itself. A box clipped by the image border is completed with
  the nominal car size. Velocity: each box is matched to the nearest box of the previous frames
  of the stack (frame differencing over ``stack - 1`` decisions), giving the motion relative to
  the ego car, plus the ego's own velocity.
- **heading**: the ego car's body (the component at the image centre) gives its heading in the
  image by its second moments, up to a half turn; the half turn is the one nearest the previous
  step's heading (at the first step, or after an apparent right-angle turn: the side of the
  headlights, else the image's +x). On a
  straight road the ego car's lateral drift relative to the boundaries over the stacked frames,
  divided by its speed, refines it (see :meth:`VisionPerception._refined_heading`).
- **lanes** (curved roads too, as classic lane-finding pipelines do): marking pixels
  (``>= MARKING_LEVEL``) near the ego car give the road direction (the structure tensor of the
  marking mask); across the road through the ego car, peaks of marking pixels seed the lane
  boundaries; each is traced along the road by sliding windows that follow its curvature (the
  next window is predicted from a circle through the last points, which carries it through the
  gaps of a dashed line and behind cars). A boundary whose markings ahead show gaps of a dash
  gap's length (``DASH_GAP_M``) is dashed (a lane divider), else solid (a road edge).
  Lanes lie between neighbouring boundaries a lane width apart, and beyond a dashed boundary at
  the edge of the view where the lane's far side is out of view; the ego's road is the run of
  lanes around it joined by dashed boundaries. Every lane centre is the longest traced boundary
  of the road shifted sideways by the lane's offset, so all lanes are sampled at the same
  stations; past the trace the road is continued straight.
- **lanes that end** (on-ramps, lane drops), read by the planner as a centre line that runs
  into a neighbour's: a lane whose boundary ends inside the view, not at the border nor behind a
  car, bends into the neighbour on its other side from there; a lane that opened beside the road
  (its boundary is dashed ahead but solid behind, an acceleration lane) is followed from step to
  step and bends into its neighbour beyond the view, so the car never changes into it.
- **memory**: the last lanes that held the ego car, moved by its own motion, stand in for up to
  ``LANE_MEMORY_STEPS`` decisions where a frame shows none that does.

Calibration constants were fitted against ground truth on ``highway``, ``merge`` and
``racetrack`` validation frames (see ``driving perception``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from agents.modular.perception import Detection, LaneEstimate, Percept, project, world_to_ego
from agents.modular.planning import EGO_LENGTH_M, EGO_WIDTH_M
from agents.modular.restoration import CAR_BAND, restore
from agents.modular.ring import RingLanes, shift_left
from envs.errors import UserError
from envs.fast.drawing import HEADLIGHT_LENGTH_M, TIRE_LENGTH_M
from envs.scenarios import Scenario
from envs.spec import GRAY_WEIGHTS

VEHICLE_LEVELS: tuple[int, int] = CAR_BAND
"""Gray levels (exclusive bounds) of car bodies (:data:`agents.modular.restoration.CAR_BAND`)."""
MARKING_LEVEL = 240
"""Gray level at or above which a pixel is a lane marking."""
SIGN_MIN_COS = 0.5
"""The last heading decides the body's half turn when the body axis is within 60 degrees of it
(a decision period turns the car far less); else the headlights do."""
HEADLIGHT_LEVEL = 200
"""Gray level at or above which a car body pixel is a headlight (a lighter patch at the front)."""
MOTION_MIN_SHIFT_PX = 1.0
"""The scene's shift between two frames of the stack must be at least this [px] to tell which
way the ego car moves."""
MOTION_MIN_CONTRAST = 0.8
"""The travel direction is taken from the motion when the frames shifted the other way match at
most this fraction as well (sum of squared differences of the marking masks)."""
BOX_CENTRE_OFFSET_PX: tuple[float, float] = (1.25, 1.65)
"""Pixel offset (u, v) from the centre of a car's body pixels to its true centre (the outline is
drawn on one side more than the other, in image axes whatever the car's heading); fitted on 100+
ground-truth boxes, std ~0.4 px."""
MIN_BOX_PIXELS = 3
"""Smallest component [px] kept as a (partly visible) car."""
DIRECTION_RADIUS_M = 6.0
"""Width (Gaussian sigma) [m] of the neighbourhood of the ego car whose markings give the road
direction."""
SEED_STRIP_M = 3.0
"""Marking pixels within this distance [m] along the road of the ego car seed the boundaries."""
SEED_RANGE_M = 14.0
"""Boundaries farther than this [m] across the road from the ego car are not traced."""
SEED_MIN_PIXELS = 3
"""Fewest marking pixels of a boundary seed."""
TRACE_STEP_M = 1.0
"""Sliding-window step [m] along a boundary."""
TRACE_WINDOW_M = 0.7
"""Half-width [m] of a sliding window across the boundary."""
TRACE_MAX_GAP_M = 7.0
"""A boundary trace stops after this length [m] without markings (longer than a dash gap,
1.3 m, and a car lying over the line, 5 m)."""
TRACE_MAX_CURVATURE = 1 / 8.0
"""Largest boundary curvature [1/m] the trace predicts with (tighter than any highway-env road)."""
DASH_GAP_M = 0.8
"""A gap in a boundary's markings at least this long [m] is a gap between dashes (1.33 m in
highway-env, 4 px at 3 px/m); a solid curve drawn as pixel steps has gaps of a pixel or two."""
DASHED_MIN_GAPS = 2
"""A boundary with at least this many dash gaps within ``COVER_RANGE_M`` is dashed (a lane
divider), else solid (a road edge)."""
COVER_RANGE_M: tuple[float, float] = (-2.0, 20.0)
"""Stretch [m] of a boundary, from the ego car's station, whose cover decides solid or dashed."""
LANE_WIDTH_RANGE_M: tuple[float, float] = (2.5, 5.5)
"""Two boundaries this far apart [m] (exclusive) enclose a lane."""
DEFAULT_LANE_WIDTH_M = 4.0
"""Lane width [m] assumed when fewer than two boundaries are seen (highway-env's default)."""
LANE_SPAN_M: tuple[float, float, float] = (-10.0, 80.0, 2.5)
"""Start, stop and spacing [m] of the lane centre-line points along the road (closer than the
oracle's 5 m, so that a 15 m-radius curve is followed within 5 cm)."""
END_MARGIN_M = 2.0
"""A boundary ends inside the view when its trace stops at least this far [m] from the border."""
STRAIGHT_SPAN_M = 10.0
"""A road is judged straight from a boundary traced at least twice this long [m]..."""
STRAIGHT_MAX_TURN_RAD = math.radians(2.0)
"""...whose two halves turn by less than this [rad]."""
DRIFT_AGREEMENT_RAD = math.radians(8.0)
"""The drift's heading replaces the body's when they agree within this [rad] (the body's
moments err by up to 6 degrees)."""
LANE_MEMORY_STEPS = 10
"""For this many decisions at most, lanes the frame does not show are the last ones seen, moved
by the ego's own motion (highway-env leaves out the markings of some curves near the ego car in
some frames, about 5% of ``racetrack`` frames)."""
OPENING_BEHIND_M: tuple[float, float] = (-12.0, -2.0)
"""Stretch [m] behind the ego car's station where a boundary dashed ahead must be solid, and
traced over at least 6 m, for a lane to open beside it."""
ADDED_LANE_MEMORY_M = 120.0
"""An added lane is remembered for this distance travelled [m] after its opening was last seen
(``merge``'s acceleration lane is 80 m long; a lane kept longer is taken for an ordinary one)."""
ADDED_LANE_END_M = 60.0
"""An added lane, whose end is beyond the view, is taken to bend into its neighbour from this
far ahead [m] on (what the planner reads as a lane that ends: never a lane-change target)."""
RING_EXITS: dict[str, float] = {"roundabout": -math.pi / 2}
"""Scenarios whose road is a roundabout, and the heading [rad] in the image of the exit road
their route leaves the ring by (the driver's instruction: ``roundabout`` takes the exit heading
north); their lanes come from :class:`~agents.modular.ring.RingLanes`."""
MATCH_GATE_M: tuple[float, float] = (4.0, 2.0)
"""Largest per-frame relative displacement (along, across the ego heading) [m] of a matched
car."""


@dataclass
class Boundary:
    """One lane boundary traced in a frame.

    Attributes:
        points: ``(K, 2)`` [m] in image axes centred on the ego car (x right, y down), ordered
            along the road direction, ``TRACE_STEP_M`` apart.
        seed: index in ``points`` of the point at the ego car's station.
        offset: its lateral position [m] at the ego's station (+ right of the road direction).
        dashed: whether its markings ahead are dashed (a lane divider).
        end: arc length [m] from the seed to where it ends inside the view ahead (inf if it
            leaves the view or is lost behind a car).
        opens: it is dashed ahead but solid behind (``OPENING_BEHIND_M``): a lane opens beside
            the road here (an on-ramp's acceleration lane), which will end.
    """

    points: np.ndarray
    seed: int
    offset: float
    dashed: bool
    end: float = math.inf
    opens: bool = False


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
        self._heading: float | None = None
        # whether the heading's half turn is known (from the headlights, or from the motion
        # through the stack where the scale leaves no headlights in view)
        self._lights = headlights_drawn(self.spec.scaling)
        self._confirmed = False
        # the last lanes seen: (lanes with centre lines in image axes [m], ego lane, age)
        self._memory: tuple[list[LaneEstimate], int, int] | None = None
        # an opening boundary seen: (its offset [m] from the ego car, +1 / -1: the added lane
        # lies to its right / left, metres left to remember it)
        self._added: tuple[float, int, float] | None = None
        exit_heading = RING_EXITS.get(scenario.name)
        self._ring = (
            None
            if exit_heading is None
            else RingLanes(
                exit_heading, DEFAULT_LANE_WIDTH_M, self.spec.scaling, (self.cu, self.cv)
            )
        )
        vs, us = np.mgrid[0 : self.spec.height, 0 : self.spec.width]
        sigma = DIRECTION_RADIUS_M * self.spec.scaling
        self._weight = np.exp(
            -((us + 0.5 - self.cu) ** 2 + (vs + 0.5 - self.cv) ** 2) / (2 * sigma**2)
        ).astype(np.float32)

    @staticmethod
    def check_supported(scenario: Scenario) -> None:
        """Raise :class:`UserError` for observations the perception cannot read."""
        if scenario.observation.stack < 2:
            raise UserError("modular-vision needs an observation stack of at least 2 frames")

    def reset(self) -> None:
        """Forget the previous episode's heading and lanes (the memory across steps)."""
        self._heading = None
        self._confirmed = False
        self._memory = None
        self._added = None
        if self._ring is not None:
            self._ring.reset()

    # -- pixels -> frames -----------------------------------------------------------------------
    def frames(self, obs: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` uint8 observation -> ``(stack, H, W)`` gray frames, oldest first, each
        restored to the renderer's palette (:func:`~agents.modular.restoration.restore`: the
        identity on a clean frame)."""
        if self.spec.kind == "gray":
            gray = obs
        else:
            shape = (self.spec.stack, 3, self.spec.height, self.spec.width)
            rgb = obs.reshape(shape).astype(np.float32)
            weights = np.asarray(GRAY_WEIGHTS, dtype=np.float32)
            gray = np.tensordot(weights, rgb, axes=([0], [1])).round().astype(np.uint8)
        centre = (self.cu - BOX_CENTRE_OFFSET_PX[0], self.cv - BOX_CENTRE_OFFSET_PX[1])
        frames = list(gray)
        restored = [restore(frame, centre, self.spec.scaling) for frame in frames]
        if all(r is f for r, f in zip(restored, frames, strict=True)):
            return gray
        return np.stack(restored)

    def _metres(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Pixel centres -> ``(N, 2)`` [m] image axes centred on the ego car."""
        s = self.spec.scaling
        return np.stack([(cols + 0.5 - self.cu) / s, (rows + 0.5 - self.cv) / s], axis=1)

    # -- vehicles -----------------------------------------------------------------------------
    def _components(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Car body components of ``frame``: ``(labels (H, W), stats (N, 5), ego label or 0)``."""
        lo, hi = VEHICLE_LEVELS
        mask = ((frame > lo) & (frame < hi)).astype(np.uint8)
        _n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        # the ego car's body covers the image centre, less the drawing offset
        u = round(self.cu - BOX_CENTRE_OFFSET_PX[0])
        v = round(self.cv - BOX_CENTRE_OFFSET_PX[1])
        h, w = frame.shape
        window = labels[max(v - 1, 0) : min(v + 2, h), max(u - 1, 0) : min(u + 2, w)]
        found = window[window > 0]
        ego = int(np.bincount(found).argmax()) if len(found) else 0
        return labels, stats, ego

    def boxes(self, frame: np.ndarray, heading: float = 0.0) -> np.ndarray:
        """Cars in one ``(H, W)`` gray frame -> ``(N, 4)`` ``[x, y, length, width]`` [m]: the centre
        in image axes centred on the ego car (x to the right of the image, y down) and the extent
        along and across ``heading`` [rad] (the ego heading in the image), ego car excluded."""
        labels, stats, ego = self._components(frame)
        s, (h, w) = self.spec.scaling, frame.shape
        nominal = (s * EGO_LENGTH_M - 2, s * EGO_WIDTH_M - 2)  # body pixels inside the outline
        c, sn = math.cos(heading), math.sin(heading)
        out = []
        for k, (x0, y0, bw, bh, area) in enumerate(stats):
            if k in (0, ego) or area < MIN_BOX_PIXELS:
                continue
            u, length = _centre(x0, bw, w, nominal[0], BOX_CENTRE_OFFSET_PX[0], s)
            v, width = _centre(y0, bh, h, nominal[1], BOX_CENTRE_OFFSET_PX[1], s)
            clipped = x0 == 0 or y0 == 0 or x0 + bw == w or y0 + bh == h
            if not clipped and abs(sn) > 1e-3:  # extent along the rotated ego axes
                rows, cols = np.nonzero(labels[y0 : y0 + bh, x0 : x0 + bw] == k)
                length = (np.ptp(c * cols + sn * rows) + 3) / s  # + 1 px and the outline
                width = (np.ptp(-sn * cols + c * rows) + 3) / s
            out.append([(u - self.cu) / s, (v - self.cv) / s, length, width])
        return np.asarray(out, dtype=float).reshape(-1, 4)

    # -- heading ------------------------------------------------------------------------------
    def heading(self, frame: np.ndarray) -> float:
        """The ego heading [rad] in the image (from +x towards +y), from its body's moments."""
        labels, stats, ego = self._components(frame)
        if ego == 0:
            return self._heading if self._heading is not None else 0.0
        x0, y0, bw, bh, _ = stats[ego]
        body = labels[y0 : y0 + bh, x0 : x0 + bw] == ego
        m = cv2.moments(body.astype(np.uint8), binaryImage=True)
        axis = 0.5 * math.atan2(2 * m["mu11"], m["mu20"] - m["mu02"])
        # the half turn nearest the last heading, unless the body turned by about a right angle
        # since (the first frame of an episode may show the car before it was turned)
        reference = self._heading
        if reference is None or abs(math.cos(axis - reference)) < SIGN_MIN_COS:
            lights = body & (frame[y0 : y0 + bh, x0 : x0 + bw] >= HEADLIGHT_LEVEL)
            if lights.any():  # the headlights are at the front
                rows, cols = np.nonzero(lights)
                du = cols.mean() - m["m10"] / m["m00"]
                dv = rows.mean() - m["m01"] / m["m00"]
                reference = math.atan2(dv, du)
        if reference is None:
            reference = 0.0
        if math.cos(axis - reference) < 0:
            axis += math.pi
        return _wrap(axis)

    # -- lanes --------------------------------------------------------------------------------
    def boundaries(self, frame: np.ndarray, heading: float) -> list[Boundary]:
        """Lane boundaries in one frame, left-most first, traced along the road direction
        nearest the ego ``heading`` [rad] in the image."""
        rows, cols = np.nonzero(frame >= MARKING_LEVEL)
        points = self._metres(rows, cols)
        direction = self._road_direction(frame, heading)
        if len(points) == 0:
            return []
        t = np.array([math.cos(direction), math.sin(direction)])
        n = np.array([-t[1], t[0]])  # right of the travel direction
        along, across = points @ t, points @ n
        strip = np.abs(along) < SEED_STRIP_M
        marks, cars = frame >= MARKING_LEVEL, self._car_mask(frame)
        out = []
        for offset in _peaks(across[strip], SEED_RANGE_M, 1 / self.spec.scaling):
            near = strip & (np.abs(across - offset) < 0.5)
            start = points[near].mean(axis=0)
            ahead, end_ahead = self._trace(marks, cars, start, direction)
            behind, _ = self._trace(marks, cars, start, direction + math.pi, -LANE_SPAN_M[0])
            line = np.concatenate([behind[::-1], [start], ahead])
            seed = len(behind)
            dashed = self._gaps(line, seed, marks, cars) >= DASHED_MIN_GAPS
            # solid behind: traced 6 m or more, in full sight, without a gap of 2 px
            solid_behind = len(behind) * TRACE_STEP_M >= -OPENING_BEHIND_M[0] / 2 and not (
                self._gaps(line, seed, marks, cars, OPENING_BEHIND_M, 1.5 / self.spec.scaling, True)
            )
            out.append(
                Boundary(
                    points=line,
                    seed=seed,
                    offset=float(start @ n),
                    dashed=dashed,
                    end=end_ahead,
                    opens=dashed and solid_behind,
                )
            )
        return sorted(out, key=lambda b: b.offset)

    def _road_direction(self, frame: np.ndarray, heading: float) -> float:
        """Direction [rad] of the markings near the ego car (structure tensor), the travel
        direction nearest ``heading``; ``heading`` itself when no marking is near."""
        marks = cv2.GaussianBlur((frame >= MARKING_LEVEL).astype(np.float32), (0, 0), 1.0)
        gx = cv2.Sobel(marks, cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(marks, cv2.CV_32F, 0, 1)
        weight = self._weight
        jxx, jyy, jxy = (float((weight * g).sum()) for g in (gx * gx, gy * gy, gx * gy))
        if jxx + jyy < 1e-6:
            return heading
        across = 0.5 * math.atan2(2 * jxy, jxx - jyy)  # the dominant gradient: across the lines
        direction = across + math.pi / 2
        if math.cos(direction - heading) < 0:
            direction += math.pi
        return _wrap(direction)

    def _car_mask(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W)`` bool: car pixels (bodies and outlines, grown by a pixel), which may hide
        markings."""
        lo, hi = VEHICLE_LEVELS
        cars = ((frame > lo) & (frame < hi)) | (frame < 90)  # outlines: 59, road: 99
        return cv2.dilate(cars.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0

    def _in_view(self, point: np.ndarray, margin: float = 0.0) -> bool:
        s = self.spec.scaling
        u, v = point[0] * s + self.cu, point[1] * s + self.cv
        m = margin * s
        return m <= u < self.spec.width - m and m <= v < self.spec.height - m

    def _trace(
        self,
        marks: np.ndarray,
        cars: np.ndarray,
        start: np.ndarray,
        direction: float,
        length: float = math.inf,
    ) -> tuple[np.ndarray, float]:
        """Follow a boundary from ``start`` along ``direction`` [rad] by sliding windows over the
        ``(H, W)`` marking mask ``marks``.

        Returns the ``(K, 2)`` traced points [m] after ``start`` (up to the last window that held
        markings, at most ``length`` [m]) and the arc length [m] at which the boundary ends
        inside the view (inf when the trace leaves the view or reaches ``length``, or loses the
        line where a car may hide it).
        """
        step, s = TRACE_STEP_M, self.spec.scaling
        h, w = marks.shape
        # the window's sample offsets [m]: one per pixel, along x across
        k_along, k_across = round(step / 2 * s - 0.5), round(TRACE_WINDOW_M * s)
        grid_along, grid_across = np.meshgrid(
            np.arange(-k_along, k_along + 1) / s, np.arange(-k_across, k_across + 1) / s
        )
        grid_along, grid_across = grid_along.ravel(), grid_across.ravel()
        out: list[np.ndarray] = []
        p, theta, kappa, gap, hits = start, direction, 0.0, 0.0, 0
        history = [start]
        while True:
            mid = theta + kappa * step / 2
            q = p + step * np.array([math.cos(mid), math.sin(mid)])
            theta_q = theta + kappa * step
            if not self._in_view(q) or len(out) * step >= length:
                return np.asarray(out[:hits]).reshape(-1, 2), math.inf
            t = np.array([math.cos(theta_q), math.sin(theta_q)])
            n = np.array([-t[1], t[0]])
            us = ((q[0] + grid_along * t[0] + grid_across * n[0]) * s + self.cu).astype(int)
            vs = ((q[1] + grid_along * t[1] + grid_across * n[1]) * s + self.cv).astype(int)
            ok = (us >= 0) & (us < w) & (vs >= 0) & (vs < h)
            found = np.zeros(len(us), bool)
            found[ok] = marks[vs[ok], us[ok]]
            if found.any():
                q = q + grid_across[found].mean() * n
                gap = 0.0
            else:
                gap += step
                if gap > TRACE_MAX_GAP_M:
                    last = out[hits - 1] if hits else start
                    hidden = self._near_cars(cars, last, theta)
                    if hidden or not self._in_view(last, END_MARGIN_M):
                        return np.asarray(out[:hits]).reshape(-1, 2), math.inf
                    return np.asarray(out[:hits]).reshape(-1, 2), hits * step
            out.append(q)
            if gap == 0.0:
                hits = len(out)
                history.append(q)
                if len(history) >= 3:  # the circle through hits up to 4 m back
                    i = max(len(history) - 5, 0)
                    mid_hit = history[(i + len(history) - 1) // 2]
                    theta, kappa = _circle(history[i], mid_hit, q, theta)
            p = q

    def _near_cars(self, cars: np.ndarray, point: np.ndarray, theta: float) -> bool:
        """Whether a car lies on the line within ``TRACE_MAX_GAP_M`` after ``point``."""
        s = self.spec.scaling
        for d in np.arange(0.0, TRACE_MAX_GAP_M + 1e-9, 0.5):
            u = int((point[0] + d * math.cos(theta)) * s + self.cu)
            v = int((point[1] + d * math.sin(theta)) * s + self.cv)
            if 0 <= v < cars.shape[0] and 0 <= u < cars.shape[1] and cars[v, u]:
                return True
        return False

    def _gaps(
        self,
        line: np.ndarray,
        seed: int,
        marks: np.ndarray,
        cars: np.ndarray,
        span: tuple[float, float] = COVER_RANGE_M,
        min_gap: float = DASH_GAP_M,
        strict: bool = False,
    ) -> int:
        """Number of gaps of ``min_gap`` [m] or longer in the markings ``marks`` (looked for
        within a pixel across) along ``line`` within ``span`` [m] of its seed, where no car of
        ``cars`` hides the line (``strict``: a hidden stretch counts as a gap)."""
        lo = max(seed + int(span[0] / TRACE_STEP_M), 0)
        hi = min(seed + int(span[1] / TRACE_STEP_M) + 1, len(line))
        part = line[lo:hi]
        if len(part) < 2:
            return 0
        s = self.spec.scaling
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(part, axis=0).T))])
        step = 0.5 / s  # two samples per pixel, so that no pixel of a gap is skipped
        ts = np.linspace(0.0, arc[-1], max(int(arc[-1] / step), 2))
        centre = np.stack([np.interp(ts, arc, part[:, 0]), np.interp(ts, arc, part[:, 1])], 1)
        tangent = np.gradient(centre, axis=0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
        h, w = marks.shape
        on_mark, hidden = np.zeros(len(ts), bool), np.zeros(len(ts), bool)
        for side in (-1.0, 0.0, 1.0):  # a pixel either side of the line, not along it
            pts = centre + side / s * normal
            us = np.clip((pts[:, 0] * s + self.cu).astype(int), 0, w - 1)
            vs = np.clip((pts[:, 1] * s + self.cv).astype(int), 0, h - 1)
            on_mark |= marks[vs, us]
            hidden |= cars[vs, us]
        if strict and hidden.any():
            return 1
        blank = (~on_mark & ~hidden).astype(np.int8)
        edges = np.diff(np.concatenate([[0], blank, [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        return int(np.count_nonzero(runs * (arc[-1] / max(len(ts) - 1, 1)) >= min_gap))

    def _sees_beyond(self, bound: Boundary, distance: float) -> bool:
        """Whether the view shows the road ``distance`` [m] to the right (negative: left) of
        ``bound`` at the ego's station: a lane beyond a dashed edge boundary is only assumed
        where its far boundary could be out of view (a solid line drawn with gaps is not a
        divider)."""
        line, k = bound.points, bound.seed
        if len(line) < 2:
            return False
        tangent = line[min(k + 1, len(line) - 1)] - line[max(k - 1, 0)]
        tangent = tangent / max(float(np.linalg.norm(tangent)), 1e-9)
        far = line[k] + distance * np.array([-tangent[1], tangent[0]])
        return self._in_view(far, TRACE_WINDOW_M)

    def lanes(
        self, bounds: list[Boundary], heading: float, travel: float = 0.0
    ) -> tuple[list[LaneEstimate], int]:
        """The lanes of the ego car's road (left-most first) and the ego lane's position in them.

        A lane lies between two neighbouring boundaries a lane width apart, or beyond a dashed
        boundary at the edge of the view when its far boundary would be out of view. The ego's
        road is the run of lanes around the ego car joined by dashed boundaries: a solid line
        is a road edge, and lanes beyond it (an on-ramp, the verge between) belong to another
        road. ``travel``: the distance [m] the ego car drove since the last call.
        """
        ys = [b.offset for b in bounds]
        widths = np.diff(ys)
        widths = widths[(widths > LANE_WIDTH_RANGE_M[0]) & (widths < LANE_WIDTH_RANGE_M[1])]
        width = float(np.median(widths)) if len(widths) else DEFAULT_LANE_WIDTH_M
        # (centre, left boundary, right boundary); None: beyond the view
        spans: list[tuple[float, Boundary | None, Boundary | None]] = [
            ((a.offset + b.offset) / 2, a, b)
            for a, b in itertools.pairwise(bounds)
            if LANE_WIDTH_RANGE_M[0] < b.offset - a.offset < LANE_WIDTH_RANGE_M[1]
        ]
        if bounds and bounds[0].dashed and not self._sees_beyond(bounds[0], -width):
            spans.insert(0, (ys[0] - width / 2, None, bounds[0]))
        if bounds and bounds[-1].dashed and not self._sees_beyond(bounds[-1], width):
            spans.append((ys[-1] + width / 2, bounds[-1], None))
        if not spans:
            return [], -1
        ego = int(np.argmin([abs(c) for c, _, _ in spans]))
        lo = hi = ego
        while (
            lo > 0
            and spans[lo][1] is not None
            and spans[lo][1].dashed
            and abs(spans[lo][0] - spans[lo - 1][0] - width) < 1.0
        ):
            lo -= 1
        while (
            hi < len(spans) - 1
            and spans[hi][2] is not None
            and spans[hi][2].dashed
            and abs(spans[hi + 1][0] - spans[hi][0] - width) < 1.0
        ):
            hi += 1
        road = spans[lo : hi + 1]
        # lane ids count from the left road edge when seen, else back from the right one
        first = -1
        if road[0][1] is not None and not road[0][1].dashed:
            first = 0
        elif road[-1][2] is not None and not road[-1][2].dashed and self.lanes_count:
            first = int(self.lanes_count) - len(road)
        members = [bound for _, a, b in road for bound in (a, b) if bound is not None]
        reference = max(members, key=lambda bound: len(bound.points))
        stations, axis, normal = _road_axis(reference)
        added = self._added_lane(road, travel)
        # lanes that end: one boundary ends ahead in view; beyond, the centre joins the neighbour
        offsets = np.empty((len(road), len(stations)))
        for i, (yc, a, b) in enumerate(road):
            offsets[i] = yc - reference.offset
            if added is not None and added[0] == i and 0 <= i - added[1] < len(road):
                ramp = np.clip((stations - ADDED_LANE_END_M) / width, 0.0, 1.0)
                offsets[i] += ramp * (road[i - added[1]][0] - yc)
            for bound, side in ((a, 1), (b, -1)):
                j = i + side
                if bound is not None and math.isfinite(bound.end) and 0 <= j < len(road):
                    ramp = np.clip((stations - bound.end) / width, 0.0, 1.0)
                    offsets[i] += ramp * (road[j][0] - yc)
        lanes = []
        for i in range(len(road)):
            ego_pts = world_to_ego(axis + offsets[i][:, None] * normal, np.zeros(2), heading)
            index = first + i if first >= 0 else -1
            lanes.append(LaneEstimate(index=index, width=width, centerline=ego_pts))
        return lanes, ego - lo

    def _added_lane(
        self, road: list[tuple[float, Boundary | None, Boundary | None]], travel: float
    ) -> tuple[int, int] | None:
        """``(position in road, side)`` of a lane added beside the road (+1: right of its
        opening boundary), from an opening boundary seen now or followed since (the nearest
        dashed boundary within 1 m of where it was, for ``ADDED_LANE_MEMORY_M`` of travel;
        ``travel`` [m] since the last step); updates that memory."""
        bounds = [bound for _, a, b in road for bound in (a, b) if bound is not None]
        opening = next((b for b in bounds if b.opens), None)
        memory = ADDED_LANE_MEMORY_M
        if opening is None and self._added is not None:
            near = [b for b in bounds if b.dashed and abs(b.offset - self._added[0]) < 1.0]
            opening = min(near, key=lambda b: abs(b.offset - self._added[0]), default=None)
            side, memory = self._added[1], self._added[2] - travel
        elif opening is not None:
            # the added lane is the one at the road's edge (a solid line beyond it), else the
            # one the ego car is not in
            left = next((i for i, (_, _, b) in enumerate(road) if b is opening), None)
            right = next((i for i, (_, a, _) in enumerate(road) if a is opening), None)
            if left is None or right is None:
                self._added = None
                return None
            edge_left = road[left][1] is not None and not road[left][1].dashed
            edge_right = road[right][2] is not None and not road[right][2].dashed
            if edge_left != edge_right:
                side = 1 if edge_right else -1
            else:
                side = 1 if abs(road[right][0]) > abs(road[left][0]) else -1
        if opening is None or memory <= 0:
            self._added = None
            return None
        self._added = (opening.offset, side, memory)
        lane = next(
            (i for i, (_, a, b) in enumerate(road) if (a if side > 0 else b) is opening), None
        )
        return None if lane is None else (lane, side)

    # -- the step -------------------------------------------------------------------------------
    def perceive(self, obs: np.ndarray, info: dict[str, Any]) -> Percept:
        """The percept of one step from ``obs`` and the speedometer ``info["metrics"]["speed"]``."""
        frames = self.frames(obs)
        speed = float(info["metrics"]["speed"])
        heading = self.heading(frames[-1])
        if not self._lights and not self._confirmed:
            heading = self._moving_heading(frames, heading, speed)
        bounds = self.boundaries(frames[-1], heading)
        heading = self._refined_heading(frames, bounds, heading, speed)
        self._heading = heading
        lanes, ego_lane = self._remembered(
            *self.lanes(bounds, heading, speed * self.dt), heading, speed
        )
        if not self._lights and not self._confirmed:
            # the half turn is not known yet (the first frame): nothing is placed
            return Percept(ego_speed=speed, heading=heading)
        if self._ring is not None:
            lanes, ego_lane = self._ring_lanes(frames[-1], bounds, heading, speed, lanes, ego_lane)
        boxes = [self.boxes(f, heading) for f in frames]
        c, s = math.cos(heading), math.sin(heading)
        detections = []
        for x, y, length, width in boxes[-1]:
            rel = self._relative_velocity(np.array([x, y]), boxes, heading)
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
            heading=heading,
        )

    def _moving_heading(self, frames: np.ndarray, heading: float, speed: float) -> float:
        """``heading`` [rad] or its reverse, whichever way the scene moved between the last two
        frames of the ``(stack, H, W)`` gray ``frames`` at ``speed`` [m/s] (the older frame shows
        the scene shifted forwards by the ego's travel); ``heading`` while the motion does not
        tell (the first frame of an episode, too slow, too little structure). Once told, the
        half turn is kept (:meth:`heading` follows the last heading); the lanes remembered
        under the other half turn are forgotten."""
        older, newest = frames[-2], frames[-1]
        shift = speed * self.dt * self.spec.scaling
        if shift < MOTION_MIN_SHIFT_PX or not older.any():
            return heading
        marks_old = cv2.GaussianBlur((older >= MARKING_LEVEL).astype(np.float32), (0, 0), 1.0)
        marks_new = cv2.GaussianBlur((newest >= MARKING_LEVEL).astype(np.float32), (0, 0), 1.0)
        h, w = newest.shape
        m = math.ceil(shift) + 1  # leave out the border the shift brings in
        errors = []
        for direction in (heading, heading + math.pi):
            move = np.float32(
                [[1, 0, shift * math.cos(direction)], [0, 1, shift * math.sin(direction)]]
            )
            moved = cv2.warpAffine(marks_new, move, (w, h), flags=cv2.INTER_LINEAR)
            errors.append(float(((moved - marks_old)[m : h - m, m : w - m] ** 2).sum()))
        if min(errors) > MOTION_MIN_CONTRAST * max(errors):
            return heading
        self._confirmed = True
        if errors[1] < errors[0]:
            self._memory, self._added = None, None
            return _wrap(heading + math.pi)
        return heading

    def _ring_lanes(
        self,
        frame: np.ndarray,
        bounds: list[Boundary],
        heading: float,
        speed: float,
        lanes: list[LaneEstimate],
        ego_lane: int,
    ) -> tuple[list[LaneEstimate], int]:
        """On a roundabout, the route's lane through it (:class:`~agents.modular.ring.RingLanes`)
        as the only lane, from the ``(H, W)`` gray ``frame``, its ``bounds`` and the ego's
        ``heading`` [rad] and ``speed`` [m/s]; ``lanes`` and ``ego_lane`` (the road's lanes, as
        found) before the ring is seen or where the route's lane holds no point near the ego."""
        assert self._ring is not None
        travel = speed * self.dt * np.array([math.cos(heading), math.sin(heading)])
        marks = frame >= MARKING_LEVEL
        ring = self._ring.update(marks, travel)
        width = DEFAULT_LANE_WIDTH_M
        kerbs = [b for b in bounds if 0.5 < b.offset < width]
        entry = shift_left(min(kerbs, key=lambda b: b.offset).points, width / 2) if kerbs else None
        if ring is None:
            line = entry
        else:
            exit_line = self._ring.exit_lane(marks, ring)
            line = self._ring.lane(ring, entry, exit_line)
        if line is None or len(line) < 2:
            return lanes, ego_lane
        ego = world_to_ego(line, np.zeros(2), heading)
        return [LaneEstimate(index=-1, width=width, centerline=ego)], 0

    def _refined_heading(
        self, frames: np.ndarray, bounds: list[Boundary], heading: float, speed: float
    ) -> float:
        """The ego heading [rad] from its drift across a straight road over the stack, when the
        body's ``heading`` agrees within ``DRIFT_AGREEMENT_RAD``; else ``heading``.

        The body's moments misjudge small turns (a rectangle of 15 x 6 px rotated by 5 degrees
        is drawn almost as before), which a lane change is made of; the lateral drift of the
        boundaries over ``stack - 1`` decisions, divided by the speed, is precise to a fraction
        of a degree there. On a curve the drift also holds the car's slip angle, so the body
        decides.
        """
        if speed < 1.0 or not bounds:
            return heading
        line = max(bounds, key=lambda b: len(b.points)).points
        if len(line) < 2 * STRAIGHT_SPAN_M / TRACE_STEP_M:
            return heading
        chord = np.diff(line[[0, len(line) // 2, -1]], axis=0)
        turn = _wrap(math.atan2(chord[1, 1], chord[1, 0]) - math.atan2(chord[0, 1], chord[0, 0]))
        if abs(turn) > STRAIGHT_MAX_TURN_RAD:
            return heading
        direction = math.atan2(line[-1, 1] - line[0, 1], line[-1, 0] - line[0, 0])
        if math.cos(direction - heading) < 0:
            direction += math.pi
        t = np.array([math.cos(direction), math.sin(direction)])
        n = np.array([-t[1], t[0]])
        newest = [b.offset for b in bounds]
        times, drifts = [], []
        for k, frame in enumerate(frames[:-1]):
            rows, cols = np.nonzero(frame >= MARKING_LEVEL)
            points = self._metres(rows, cols)
            strip = np.abs(points @ t) < SEED_STRIP_M
            older = _peaks(points[strip] @ n, SEED_RANGE_M, 1 / self.spec.scaling)
            shifts = [y_new - y for y_new in newest for y in older if abs(y_new - y) < 1.0]
            if shifts:  # ego lateral position in frame k relative to the newest frame [m]
                times.append((k - (len(frames) - 1)) * self.dt)
                drifts.append(float(np.median(shifts)))
        if len(times) < 2:
            return heading
        times.append(0.0)
        drifts.append(0.0)
        slope = np.polyfit(np.asarray(times), np.asarray(drifts), 1)[0]  # lateral speed [m/s]
        drifted = _wrap(direction + math.asin(float(np.clip(slope / speed, -0.5, 0.5))))
        return drifted if abs(_wrap(drifted - heading)) < DRIFT_AGREEMENT_RAD else heading

    def _remembered(
        self, lanes: list[LaneEstimate], ego_lane: int, heading: float, speed: float
    ) -> tuple[list[LaneEstimate], int]:
        """``lanes`` if the ego car lies in its lane (within half a lane width and 1 m), else the
        last lanes that passed this check, moved back by the ego's travel since, for up to
        ``LANE_MEMORY_STEPS`` decisions (else ``lanes`` as they are)."""
        c, s = math.cos(heading), math.sin(heading)
        if ego_lane >= 0:
            lane = lanes[ego_lane]
            _, d = project(lane.centerline, np.zeros(2))
            if abs(d) < lane.width / 2 + 1.0:
                rotate = np.array([[c, s], [-s, c]])  # image axes = ego axes @ rotate
                image = [replace(x, centerline=x.centerline @ rotate) for x in lanes]
                self._memory = (image, ego_lane, 0)
                return lanes, ego_lane
        if self._memory is None or self._memory[2] >= LANE_MEMORY_STEPS:
            return lanes, ego_lane
        image, kept_lane, age = self._memory
        travel = speed * self.dt * np.array([c, s])
        image = [replace(x, centerline=x.centerline - travel) for x in image]
        self._memory = (image, kept_lane, age + 1)
        to_ego = np.array([[c, -s], [s, c]])
        return [replace(x, centerline=x.centerline @ to_ego) for x in image], kept_lane

    def _relative_velocity(
        self, position: np.ndarray, boxes: list[np.ndarray], heading: float
    ) -> np.ndarray:
        """Velocity [m/s] relative to the ego car, image axes, of the box at ``position`` in the
        newest frame, by chaining nearest-box matches back through the older frames (gated
        along and across ``heading``)."""
        c, s = math.cos(heading), math.sin(heading)
        current, steps = position, 0
        for older in reversed(boxes[:-1]):
            if not len(older):
                break
            d = older[:, :2] - current
            along, across = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
            ok = (np.abs(along) <= MATCH_GATE_M[0]) & (np.abs(across) <= MATCH_GATE_M[1])
            if not ok.any():
                break
            k = int(np.flatnonzero(ok)[np.argmin(np.hypot(d[ok, 0], d[ok, 1]))])
            current, steps = older[k, :2], steps + 1
        if steps == 0:
            return np.zeros(2)
        return (position - current) / (steps * self.dt)


def headlights_drawn(scaling: float) -> bool:
    """Whether highway-env's car sprite at ``scaling`` [px/m] shows the headlights: they are
    ``HEADLIGHT_LENGTH_M`` long at the front of the body, whose 1 px outline is drawn over them
    (``VehicleGraphics.display``), and vanish under it where the pixel rounding puts them on
    the outline's column."""

    def pix(length: float) -> int:
        return int(length * scaling)

    front = pix(TIRE_LENGTH_M) + pix(EGO_LENGTH_M) - 1  # the outline's column
    return (
        pix(HEADLIGHT_LENGTH_M) >= 1
        and pix(TIRE_LENGTH_M + EGO_LENGTH_M - HEADLIGHT_LENGTH_M) < front
    )


def _wrap(angle: float) -> float:
    """``angle`` [rad] wrapped to ``[-pi, pi)``."""
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _peaks(values: np.ndarray, limit: float, resolution: float) -> list[float]:
    """Centres of the clusters of ``values`` [m] within ``limit`` of 0 (a histogram of
    ``resolution``-wide bins; a peak holds at least ``SEED_MIN_PIXELS``), 1.5 m apart at least."""
    values = values[np.abs(values) <= limit]
    if len(values) == 0:
        return []
    edges = np.arange(-limit, limit + resolution, resolution)
    counts, _ = np.histogram(values, edges)
    smooth = np.convolve(counts, np.ones(3), mode="same")
    out: list[float] = []
    for k in np.argsort(-smooth, kind="stable"):
        if smooth[k] < SEED_MIN_PIXELS:
            break
        centre = (edges[k] + edges[k + 1]) / 2
        near = values[np.abs(values - centre) < 0.5]
        # at a scale under 3 px/m the smoothed peak may hold no value within 0.5 m of its bin
        if len(near) and all(abs(centre - o) >= 1.5 for o in out):
            out.append(float(near.mean()))
    return sorted(out)


def _circle(a: np.ndarray, b: np.ndarray, c: np.ndarray, theta: float) -> tuple[float, float]:
    """Direction [rad] at ``c`` (the travel direction nearest ``theta``) and signed curvature
    [1/m] (+ turning towards +y) of the circle through ``a``, ``b``, ``c``, the curvature
    capped at ``TRACE_MAX_CURVATURE``."""
    abx, aby, bcx, bcy = b[0] - a[0], b[1] - a[1], c[0] - b[0], c[1] - b[1]
    acx, acy = c[0] - a[0], c[1] - a[1]
    ab, bc = math.hypot(abx, aby), math.hypot(bcx, bcy)
    lengths = ab * bc * math.hypot(acx, acy)
    if lengths < 1e-9:
        return theta, 0.0
    kappa = 2 * (abx * bcy - aby * bcx) / lengths
    kappa = min(max(kappa, -TRACE_MAX_CURVATURE), TRACE_MAX_CURVATURE)
    # the tangent at c leads the chord a->c by half the arc's turn
    return math.atan2(acy, acx) + kappa * (ab + bc) / 2, kappa


def _road_axis(reference: Boundary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The road's axis along ``reference``: ``(stations (K,), points (K, 2), right normals
    (K, 2))`` [m] at the ``LANE_SPAN_M`` stations from the ego's station, image axes, the boundary
    continued straight past its traced ends."""
    line = reference.points
    seg = np.hypot(*np.diff(line, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    arc -= arc[reference.seed]
    start, stop, spacing = LANE_SPAN_M
    stations = np.arange(start, stop + 1e-9, spacing)
    if len(line) < 2:
        t0 = np.array([1.0, 0.0])
        pts = line[0] + stations[:, None] * t0
        return stations, pts, np.tile([-t0[1], t0[0]], (len(stations), 1))
    # end directions from the last few metres (a chord), for the straight continuation
    k = min(3, len(line) - 1)
    t_start = (line[k] - line[0]) / max(np.linalg.norm(line[k] - line[0]), 1e-9)
    t_end = (line[-1] - line[-1 - k]) / max(np.linalg.norm(line[-1] - line[-1 - k]), 1e-9)
    inside = np.clip(stations, arc[0], arc[-1])
    pts = np.stack([np.interp(inside, arc, line[:, 0]), np.interp(inside, arc, line[:, 1])], 1)
    pts += np.minimum(stations - arc[0], 0.0)[:, None] * t_start
    pts += np.maximum(stations - arc[-1], 0.0)[:, None] * t_end
    tangent = np.gradient(pts, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    return stations, pts, np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


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
