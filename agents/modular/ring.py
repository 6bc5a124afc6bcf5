"""The lane a vision car follows through a roundabout, from the markings of the frame.

A roundabout's lanes are concentric circles; the roads that enter and leave it are not. On the
ring the straight-continued lane model of :mod:`agents.modular.vision` neither holds the ring's
curvature beyond the traced markings nor knows which of the roads that branch off the ring to
take, and at the entry the lane's left boundary splits around the island between the entry and
the exit beside it. :class:`RingLanes` builds the lane the route takes instead:

- **the ring**: the marking pixels vote, along their normals, for the centre of the circles
  they lie on (a Hough transform over ring-like radii); the radii at which the markings cluster
  about the best-voted centre are the ring's circles, fitted together as concentric circles
  (:func:`find_ring`). A ring is taken once found about the same place in consecutive frames,
  then followed from frame to frame by the ego's own motion (the frames are world-aligned) and
  found again near where it is expected. The ego's ring lane is the outer one (the entries join
  it), half a lane inside the largest ring circle, driven with the centre on the left
  (right-hand traffic);
- **the entry**: the ego lane's right boundary (the entry's kerb, which leads onto the ring),
  half a lane to its left, up to where it reaches the ring lane, then the ring lane;
- **the exit**: the markings outside the ring in the direction of the route's exit heading (a
  driver's instruction, e.g. "take the exit heading north"), of which the right-most at the far
  end, followed back towards the ring, is the exit's kerb: the ring lane up to where the exit
  lane, half a lane left of that kerb, starts, then the exit lane.

All points are in image axes [m] centred on the ego car (x right, y down), like the boundaries of
:class:`~agents.modular.vision.Boundary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

RING_RADIUS_M: tuple[float, float] = (12.0, 40.0)
"""Radii [m] of the circles taken for a ring's boundaries."""
HOUGH_CELL_M = 0.5
"""Cell size [m] of the accumulator in which the marking pixels vote for the ring's centre."""
HOUGH_REACH_M = 45.0
"""The accumulator spans this far [m] from the ego car each way (a ring's centre may lie
outside the view)."""
CIRCLE_BAND_M = 0.5
"""Marking pixels within this distance [m] of a circle's radius are its points."""
CIRCLE_MAX_RMS_M = 0.22
"""Largest RMS distance [m] of a circle's points to it: a drawn circle's points lie closer
(pixel rounding), scattered markings that cross the band are spread evenly over it."""
COVER_BIN_DEG = 5.0
"""Width [deg] of the bins of bearing (from the centre) in which a circle's cover is counted."""
CIRCLE_MIN_COVER_RAD = math.radians(40.0)
"""A circle must hold points over at least this much [rad] of its arc..."""
CIRCLE_MIN_SEEN = 0.85
"""...and over at least this fraction of the part of its arc in the frame: a ring's circles are
drawn whole (its dashes are shorter than a bin), whereas the curves of the roads that enter and
leave it, which fit circles over part of their length, leave the circle they fit within the
frame."""
RING_CONFIRM_FRAMES = 2
"""A ring is taken once found in this many consecutive frames about the same centre (within
``RING_CONFIRM_M``, moved by the ego's travel)."""
RING_CONFIRM_M = 1.0
"""Largest move [m] of the centre between the frames that confirm a ring."""
RING_CENTRE_GATE_M = 3.0
"""A ring found farther than this [m] from the one followed from the last frame is not it."""
EXIT_MIN_LENGTH_M = 6.0
"""The exit's markings must extend this far [m] along the exit heading to be followed."""
EXIT_KERB_STEP_M = 1.0
"""The exit's kerb moves at most this far [m] sideways from one metre along the exit heading to
the next (where it leaves the ring it runs at 45 degrees to the exit heading, or less)."""
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


def find_ring(
    marks: np.ndarray,
    scaling: float,
    centre_px: tuple[float, float],
    near: np.ndarray | None = None,
) -> Ring | None:
    """The ring whose concentric circles the ``(H, W)`` bool marking mask shows, or None.

    Each marking pixel votes for the points a ring radius (``RING_RADIUS_M``) away along its
    normal (the structure tensor's major axis), both ways; the accumulator's peak (within
    ``RING_CENTRE_GATE_M`` of ``near`` ``(2,)`` [m], image axes, where given) is the candidate
    centre. The radial histogram of the markings about it gives the circles, whose centre is
    then refined by a least-squares fit of concentric circles (Kasa's algebraic fit with one
    constant per circle). The ring needs two circles or more that pass ``CIRCLE_MAX_RMS_M`` and
    ``CIRCLE_MIN_COVER_RAD`` and ``CIRCLE_MIN_SEEN``.

    Args:
        marks: marking mask of the frame.
        scaling: the frame's scale [px/m].
        centre_px: ``(u, v)`` [px] of the ego car in the image.
        near: the ring's centre as predicted from the last frame, if any.
    """
    rows, cols = np.nonzero(marks)
    if len(rows) < 10:
        return None
    blurred = cv2.GaussianBlur(marks.astype(np.float32), (0, 0), 1.0)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = (cv2.GaussianBlur(g, (0, 0), 1.5) for g in (gx * gx, gy * gy, gx * gy))
    theta = 0.5 * np.arctan2(2 * jxy[rows, cols], jxx[rows, cols] - jyy[rows, cols])
    normal = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    pts = np.stack(
        [(cols + 0.5 - centre_px[0]) / scaling, (rows + 0.5 - centre_px[1]) / scaling], 1
    )
    reach = np.arange(*RING_RADIUS_M, HOUGH_CELL_M)
    reach = np.concatenate([-reach, reach])
    votes = (pts[:, None, :] + reach[None, :, None] * normal[:, None, :]).reshape(-1, 2)
    cells = np.floor((votes + HOUGH_REACH_M) / HOUGH_CELL_M).astype(int)
    size = int(2 * HOUGH_REACH_M / HOUGH_CELL_M)
    inside = np.all((cells >= 0) & (cells < size), axis=1)
    acc = np.zeros((size, size), np.float32)
    np.add.at(acc, (cells[inside, 1], cells[inside, 0]), 1.0)
    acc = cv2.GaussianBlur(acc, (0, 0), 1.5)
    grid = (np.arange(size) + 0.5) * HOUGH_CELL_M - HOUGH_REACH_M
    if near is not None:
        far = np.hypot(grid[None, :] - near[0], grid[:, None] - near[1]) > RING_CENTRE_GATE_M
        acc[far] = 0.0
    if not acc.any():
        return None
    k_row, k_col = np.unravel_index(int(np.argmax(acc)), acc.shape)
    centre = np.array([grid[k_col], grid[k_row]])
    radii: list[float] = []
    for _ in range(3):  # radial peaks -> concentric fit -> radial peaks about the new centre
        dist = np.hypot(*(pts - centre).T)
        radii = _radial_peaks(dist, 1.0 / scaling)
        if not radii:
            return None
        centre, radii = _concentric_fit(pts, dist, radii)
    dist = np.hypot(*(pts - centre).T)
    h, w = marks.shape
    bins = np.radians(np.arange(0.0, 360.0, COVER_BIN_DEG) + COVER_BIN_DEG / 2)
    circles = []
    for r in radii:
        on = np.abs(dist - r) < CIRCLE_BAND_M
        if not on.any():
            continue
        rms = float(np.sqrt(np.mean((dist[on] - r) ** 2)))
        bearing = np.degrees(np.arctan2(pts[on, 1] - centre[1], pts[on, 0] - centre[0]))
        covered = np.zeros(len(bins), dtype=bool)
        covered[np.floor(bearing / COVER_BIN_DEG).astype(int) % len(bins)] = True
        # the bins whose middle lies in the frame, 1 m inside its border
        u = (centre[0] + r * np.cos(bins)) * scaling + centre_px[0]
        v = (centre[1] + r * np.sin(bins)) * scaling + centre_px[1]
        margin = scaling
        visible = (u > margin) & (u < w - margin) & (v > margin) & (v < h - margin)
        cover = math.radians(COVER_BIN_DEG * covered.sum())
        seen = (covered & visible).sum() / max(visible.sum(), 1)
        if rms < CIRCLE_MAX_RMS_M and cover >= CIRCLE_MIN_COVER_RAD and seen >= CIRCLE_MIN_SEEN:
            circles.append(r)
    if len(circles) < 2:
        return None
    return Ring(centre=centre, radius=max(circles))


def _radial_peaks(dist: np.ndarray, resolution: float) -> list[float]:
    """Radii [m] at which the distances ``dist`` ``(N,)`` [m] of marking pixels from a centre
    cluster (a histogram of ``resolution``-wide bins, peaks 2 m apart at least, within
    ``RING_RADIUS_M``)."""
    lo, hi = RING_RADIUS_M
    edges = np.arange(lo - 2.0, hi + 2.0, resolution)
    counts, _ = np.histogram(dist, edges)
    smooth = np.convolve(counts, np.ones(3), mode="same")
    peaks: list[float] = []
    for k in np.argsort(-smooth, kind="stable"):
        if smooth[k] < 10:
            break
        r = (edges[k] + edges[k + 1]) / 2
        if lo <= r <= hi and all(abs(r - p) > 2.0 for p in peaks):
            peaks.append(float(r))
    return sorted(peaks)


def _concentric_fit(
    pts: np.ndarray, dist: np.ndarray, radii: list[float]
) -> tuple[np.ndarray, list[float]]:
    """The common centre ``(2,)`` [m] and radii [m] of concentric circles fitted (least squares,
    algebraic) to the points ``pts`` ``(N, 2)`` [m] within ``CIRCLE_BAND_M`` of each of
    ``radii`` (``dist``: their distances from the current centre)."""
    rows, rhs = [], []
    for k, r in enumerate(radii):
        q = pts[np.abs(dist - r) < CIRCLE_BAND_M]
        a = np.zeros((len(q), 2 + len(radii)))
        a[:, 0], a[:, 1], a[:, 2 + k] = 2 * q[:, 0], 2 * q[:, 1], 1.0
        rows.append(a)
        rhs.append((q**2).sum(axis=1))
    sol, *_ = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)
    centre = sol[:2]
    return centre, [math.sqrt(max(c + centre @ centre, 0.0)) for c in sol[2:]]


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
        # before the ring is taken: its centre [m] in the last frame and in how many
        # consecutive frames it was found there
        self._sighting: tuple[np.ndarray, int] | None = None

    def reset(self) -> None:
        """Forget the ring of the last episode."""
        self.ring = None
        self._sighting = None

    def update(self, marks: np.ndarray, travel: np.ndarray) -> Ring | None:
        """Follow the ring by the ego's ``travel`` ``(2,)`` [m] (image axes) since the last frame
        and find it again in this frame's ``(H, W)`` bool marking mask (:func:`find_ring`);
        the ring, or None while none has been taken (``RING_CONFIRM_FRAMES``)."""
        predicted = None if self.ring is None else self.ring.centre - travel
        found = find_ring(marks, self.scaling, self.centre_px, predicted)
        if self.ring is None:
            # a first sighting: taken once it holds its place over consecutive frames
            last = self._sighting
            if found is None:
                self._sighting = None
            elif last is not None and np.hypot(*(found.centre + travel - last[0])) < RING_CONFIRM_M:
                self._sighting = (found.centre, last[1] + 1)
            else:
                self._sighting = (found.centre, 1)
            if self._sighting is not None and self._sighting[1] >= RING_CONFIRM_FRAMES:
                self.ring = found
            return self.ring
        if found is None:
            self.ring = Ring(centre=predicted, radius=self.ring.radius)
        else:
            # the outer circle is not seen in every frame: the largest one seen is kept
            radius = found.radius if found.radius > self.ring.radius - 1.0 else self.ring.radius
            self.ring = Ring(centre=found.centre, radius=radius)
        return self.ring

    def exit_lane(self, marks: np.ndarray, ring: Ring) -> np.ndarray | None:
        """Centre line ``(K, 2)`` [m] of the route's exit road, from the ring outwards, or None
        where it is not in view. ``marks``: the ``(H, W)`` bool marking mask.

        The exit road leaves the ring in its own direction: its markings lie outside the ring
        within ``EXIT_SECTOR_RAD`` of the exit heading as seen from the ring's centre, where its
        kerb is the right-most marking at the far end, followed back towards the ring metre by
        metre along the exit heading (``EXIT_KERB_STEP_M``); the lane is half a lane left of
        it."""
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
        kerb: list[np.ndarray] = []
        # from the far end of the road in view towards the ring: the right-most marking of each
        # bin that continues the kerb (the markings near the ring in the sector's corners are
        # other roads' and the ring's)
        for b in np.unique(bins)[::-1]:
            k = np.flatnonzero(bins == b)
            if kerb:
                last = kerb[-1] @ right
                k = k[np.abs(side[k] - last) < EXIT_KERB_STEP_M]
                if not len(k):
                    break
            j = k[np.argmax(side[k])]
            kerb.append(along[j] * heading + side[j] * right)
        line = np.array(kerb[::-1])
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
