"""The lane a vision car follows through a roundabout, from the markings of the frame.

A roundabout's lanes are concentric circles; the roads that enter and leave it are not. On the
ring the straight-continued lane model of :mod:`agents.modular.vision` neither holds the ring's
curvature beyond the traced markings nor knows which of the roads that branch off the ring to
take, and at the entry the lane's left boundary splits around the island between the entry and
the exit beside it. :class:`RingLanes` builds the lane the route takes instead:

- **the ring**: circles are fitted to the traced boundaries (least squares); those of ring-like
  radius that share a centre are the ring's, whose centre is then followed from frame to frame
  by the ego's own motion (the frames are world-aligned) and refined by each new fit. The ego's
  ring lane is the outer one (the entries join it), half a lane inside the largest ring
  circle, driven with the centre on the left (right-hand traffic);
- **the entry**: the ego lane's right boundary (the entry's kerb, which leads onto the ring),
  half a lane to its left, up to where it reaches the ring lane, then the ring lane;
- **the exit**: the marking curves outside the ring that run in the route's exit heading (a
  driver's instruction, e.g. "take the exit heading north"), the right-most of them being the
  exit's kerb: the ring lane up to where the exit lane, half a lane left of that kerb, starts,
  then the exit lane.

All points are in image axes [m] centred on the ego car (x right, y down), like the boundaries of
:class:`~agents.modular.vision.Boundary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RING_RADIUS_M: tuple[float, float] = (12.0, 40.0)
"""Radii [m] of the circles taken for a ring's boundaries."""
RING_FIT_MAX_RMS_M = 0.25
"""Largest RMS distance [m] of a boundary's points to its fitted circle."""
RING_FIT_MIN_TURN_RAD = math.radians(15.0)
"""A boundary fitted with a circle must turn at least this much [rad] along its trace (a nearly
straight line fits any large circle)."""
RING_SIGHT_MIN_TURN_RAD = math.radians(30.0)
"""A ring is first taken from two circles about the same centre, of boundaries that each turn at
least this much [rad] (more than an entry's curve does)."""
RING_CENTRE_GATE_M = 3.0
"""Fitted centres farther than this [m] from the ring's centre (as followed from the last frame,
else their median) are not the ring's."""
EXIT_MIN_LENGTH_M = 6.0
"""The exit's markings must extend this far [m] along the exit heading to be followed."""
EXIT_SECTOR_RAD = math.radians(45.0)
"""The exit road lies within this angle [rad] of the exit heading as seen from the ring's
centre (a ring's roads leave it about radially; the next roads are a quarter turn away)."""
EXIT_CLEARANCE_M = 1.0
"""Marking pixels at least this far [m] outside the ring's largest circle may belong to exits."""
ARC_SPACING_M = 1.0
"""Spacing [m] of the centre-line points built here."""
ARC_LENGTH_M: tuple[float, float] = (-10.0, 80.0)
"""Extent [m] of a ring-lane arc from the ego car's station, behind and ahead."""


@dataclass
class Ring:
    """A roundabout's ring in the current frame.

    Attributes:
        centre: ``(2,)`` [m] image axes from the ego car.
        radius: radius [m] of its largest (outer edge) circle seen.
    """

    centre: np.ndarray
    radius: float


def fit_circle(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares circle (Kasa's algebraic fit) through ``points`` ``(N, 2)`` [m], ``N >= 3``:
    ``(centre (2,), radius, RMS distance of the points to it)`` [m]."""
    x, y = points[:, 0], points[:, 1]
    a = np.stack([2 * x, 2 * y, np.ones_like(x)], axis=1)
    (cx, cy, c), *_ = np.linalg.lstsq(a, x**2 + y**2, rcond=None)
    radius = math.sqrt(max(c + cx**2 + cy**2, 0.0))
    rms = float(np.sqrt(np.mean((np.hypot(x - cx, y - cy) - radius) ** 2)))
    return np.array([cx, cy]), radius, rms


def _turn(points: np.ndarray) -> float:
    """Total turn [rad] of a polyline ``(K, 2)`` between its first and last chords."""
    k = max(len(points) // 4, 1)
    a, b = points[k] - points[0], points[-1] - points[-1 - k]
    return abs(math.remainder(math.atan2(b[1], b[0]) - math.atan2(a[1], a[0]), 2 * math.pi))


def shift_left(line: np.ndarray, distance: float) -> np.ndarray:
    """``line`` ``(K, 2)`` smoothed (a 5-point moving average, which the pixel steps of a traced
    marking need) and moved ``distance`` [m] to the left of its direction (image axes)."""
    if len(line) >= 5:
        kernel = np.ones(5) / 5
        padded = np.concatenate([line[:1].repeat(2, 0), line, line[-1:].repeat(2, 0)])
        line = np.stack([np.convolve(padded[:, i], kernel, mode="valid") for i in (0, 1)], 1)
    tangent = np.gradient(line, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    return line + distance * np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)


def _resample(line: np.ndarray, spacing: float) -> np.ndarray:
    """``line`` ``(K, 2)`` resampled every ``spacing`` [m] of arc length."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(line, axis=0).T))])
    if arc[-1] < spacing:
        return line
    s = np.arange(0.0, arc[-1] + 1e-9, spacing)
    return np.stack([np.interp(s, arc, line[:, 0]), np.interp(s, arc, line[:, 1])], axis=1)


class RingLanes:
    """The route's lane through a roundabout (see the module docstring); one per episode slot.

    Args:
        exit_heading: the heading [rad] in the image (from +x towards +y) of the exit road the
            route leaves the ring by.
        lane_width: the ring's lane width [m].
        scaling: the observation's scale [px/m].
        centre_px: ``(u, v)`` [px] of the ego car in the image.
    """

    def __init__(
        self, exit_heading: float, lane_width: float, scaling: float, centre_px: tuple[float, float]
    ) -> None:
        self.exit_heading = exit_heading
        self.lane_width = lane_width
        self.scaling = scaling
        self.centre_px = centre_px
        self.ring: Ring | None = None

    def reset(self) -> None:
        """Forget the ring of the last episode."""
        self.ring = None

    def update(self, boundaries: list[np.ndarray], travel: np.ndarray) -> Ring | None:
        """Follow the ring by the ego's ``travel`` ``(2,)`` [m] (image axes) since the last frame
        and refit it to this frame's traced ``boundaries`` (each ``(K, 2)`` [m]); the ring, or
        None while none has been seen."""
        predicted = None if self.ring is None else self.ring.centre - travel
        fits = []
        for line in boundaries:
            if len(line) < 8 or _turn(line) < RING_FIT_MIN_TURN_RAD:
                continue
            centre, radius, rms = fit_circle(line)
            if RING_RADIUS_M[0] < radius < RING_RADIUS_M[1] and rms < RING_FIT_MAX_RMS_M:
                fits.append((centre, radius, len(line), _turn(line)))
        if predicted is None:
            # a first sighting: two circles or more of different radii share the centre (a
            # lone arc of an entry's curve fits a circle too)
            predicted = next(
                (
                    c
                    for c, r, _, turn in fits
                    if turn >= RING_SIGHT_MIN_TURN_RAD
                    and any(
                        np.linalg.norm(c - c2) < RING_CENTRE_GATE_M / 2
                        and abs(r - r2) > 2.0
                        and turn2 >= RING_SIGHT_MIN_TURN_RAD
                        for c2, r2, _, turn2 in fits
                    )
                ),
                None,
            )
        kept = [
            f
            for f in fits
            if predicted is not None and np.linalg.norm(f[0] - predicted) < RING_CENTRE_GATE_M
        ]
        if kept:
            weights = np.array([f[2] for f in kept], dtype=float)
            centre = np.average(np.array([f[0] for f in kept]), axis=0, weights=weights)
            radius = max(f[1] for f in kept)
            if self.ring is not None and radius < self.ring.radius + 1.0:
                # the outer circle again (averaged), else an inner one: the outer as it was
                last = self.ring.radius
                radius = last + 0.2 * (radius - last) if abs(radius - last) < 1.0 else last
            self.ring = Ring(centre=centre, radius=radius)
            return self.ring
        if predicted is not None and self.ring is not None:
            self.ring = Ring(centre=predicted, radius=self.ring.radius)
        return self.ring

    def exit_lane(self, marks: np.ndarray, ring: Ring) -> np.ndarray | None:
        """Centre line ``(K, 2)`` [m] of the route's exit road, from the ring outwards, or None
        where it is not in view. ``marks``: the ``(H, W)`` bool marking mask.

        The exit road leaves the ring in its own direction: its markings lie outside the ring
        within ``EXIT_SECTOR_RAD`` of the exit heading as seen from the ring's centre, where the
        right-most marking at each metre along the exit heading is its kerb; the lane is half a
        lane left of it."""
        s, (cu, cv) = self.scaling, self.centre_px
        rows, cols = np.nonzero(marks)
        pts = np.stack([(cols + 0.5 - cu) / s, (rows + 0.5 - cv) / s], axis=1)
        rel = pts - ring.centre
        bearing = np.arctan2(rel[:, 1], rel[:, 0])
        keep = (np.hypot(rel[:, 0], rel[:, 1]) > ring.radius + EXIT_CLEARANCE_M) & (
            np.abs(np.remainder(bearing - self.exit_heading + math.pi, 2 * math.pi) - math.pi)
            < EXIT_SECTOR_RAD
        )
        heading = np.array([math.cos(self.exit_heading), math.sin(self.exit_heading)])
        right = np.array([-heading[1], heading[0]])
        along, side = pts[keep] @ heading, pts[keep] @ right
        if len(along) == 0 or np.ptp(along) < EXIT_MIN_LENGTH_M:
            return None
        bins = np.floor(along / ARC_SPACING_M).astype(int)
        stations = np.unique(bins)
        kerb = []
        for b in stations:  # the right-most marking of each bin
            k = np.flatnonzero(bins == b)
            j = k[np.argmax(side[k])]
            kerb.append(along[j] * heading + side[j] * right)
        line = np.array(kerb)
        if len(line) < 3:
            return None
        return shift_left(line, self.lane_width / 2)

    def arc(self, ring: Ring, start: np.ndarray, length: float) -> np.ndarray:
        """``(K, 2)`` points [m] of the ring lane (half a lane inside the outer circle) from the
        angle of ``start`` ``(2,)`` [m] on, ``length`` [m] long (negative: behind), driven with
        the centre on the left."""
        radius = ring.radius - self.lane_width / 2
        phi0 = math.atan2(start[1] - ring.centre[1], start[0] - ring.centre[0])
        s = np.arange(0.0, abs(length) + 1e-9, ARC_SPACING_M) * math.copysign(1.0, length)
        phi = phi0 - s / radius  # the angle decreases with the centre on the left (y down)
        return ring.centre + radius * np.stack([np.cos(phi), np.sin(phi)], axis=1)

    def lane(
        self, ring: Ring, entry: np.ndarray | None, exit_line: np.ndarray | None
    ) -> np.ndarray | None:
        """The centre line ``(K, 2)`` [m] the route takes from the ego car on: from the ``entry``
        centre line (the ego lane's, traced) onto the ring lane, along it, and out by the
        ``exit_line`` (:meth:`exit_lane`); None where neither the ring lane nor the exit holds
        the ego car and no entry is given."""
        radius = ring.radius - self.lane_width / 2
        distance = float(np.linalg.norm(ring.centre))
        origin = np.zeros(2)
        if exit_line is not None:
            # on the exit already: its centre line from behind the ego car on
            d = np.linalg.norm(exit_line, axis=1)
            k = int(np.argmin(d))
            if d[k] < self.lane_width / 2 and k > 0:
                return _resample(exit_line, ARC_SPACING_M)
        if abs(distance - radius) < self.lane_width / 2:
            path = np.concatenate(
                [
                    self.arc(ring, origin, ARC_LENGTH_M[0])[::-1],
                    self.arc(ring, origin, ARC_LENGTH_M[1])[1:],
                ]
            )
        elif entry is not None:
            here = int(np.argmin(np.linalg.norm(entry, axis=1)))
            inside = np.linalg.norm(entry - ring.centre, axis=1) < radius + 0.5
            ahead = np.flatnonzero(inside[here:]) + here
            if not len(ahead):
                return entry
            join = int(ahead[0])
            path = np.concatenate([entry[:join], self.arc(ring, entry[join], ARC_LENGTH_M[1])])
        else:
            return None
        if exit_line is None:
            return path
        # along the ring up to the exit lane's start, then the exit lane
        s_exit = np.linalg.norm(path - exit_line[0], axis=1)
        k = int(np.argmin(s_exit))
        if s_exit[k] > self.lane_width:
            return path
        return np.concatenate([path[: k + 1], exit_line])
