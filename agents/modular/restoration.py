"""Restoring a degraded bird's-eye frame to the renderer's flat palette, so that the fixed grey
levels of :mod:`agents.modular.vision` read it as they read a clean one.

Why: the sensor nuisances (issue 20, point 5) change what a fixed threshold sees. A contrast
change moves the road (99) into the car bodies' band or the markings (254) below the marking
level; a blur turns a one-pixel lane line into a low ridge at the car bodies' level, which the
vehicle detector then boxes as a string of phantom cars. Read with fixed levels, modular-vision
was a strawman against the CNN under these nuisances; a classic pipeline calibrates its camera
and restores the image first. Two steps, each the identity on a clean frame:

- **photometry**: the ego car is a calibration target always in view at a known place. The
  road's level is the frame's most common one, the ego body's the median of a few pixels at its
  centre; the linear map that takes them back to ``ROAD_LEVEL`` and ``EGO_BODY_LEVEL`` undoes a
  gain-and-offset change (``x -> 128 + g (x - 128) + b`` is linear). Corrections within the
  estimate's own noise (``PHOTOMETRY_DEAD_BAND``) are not applied.
- **blur**: the ego car's one-pixel dark outline loses contrast exactly as a one-pixel marking
  does; when it keeps less than ``SHARP_CONTRAST`` of its palette contrast the frame is blurred,
  and marking pixels are found as ridges (brighter than the pixels ``RIDGE_REACH_PX`` away on
  both sides, in one of four directions) outside car bodies (which are at least 4 px wide, a
  blurred line less), painted back at ``MARKING_PALETTE_LEVEL``; their blurred halo, and what
  else is at a car body's level but thinner than one (a line's end cut by the image border), is
  painted road.

A car cut by the image border to less than ``CAR_CORE_PX`` is not told from a line there and is
painted road in a blurred frame. Severe blur (a 3 px kernel) leaves too little of a line for
either step: the restoration then finds nothing and the frame is read as it is.
"""

from __future__ import annotations

import cv2
import numpy as np

ROAD_LEVEL = 99
"""Grey level of the road (and the ground beside it) in the default palette."""
EGO_BODY_LEVEL = 177
"""Grey level of the ego car's body in the default palette, on every scenario."""
OUTLINE_LEVEL = 59
"""Grey level of a car's one-pixel outline."""
MARKING_PALETTE_LEVEL = 254
"""Grey level of a lane marking."""
CAR_BAND: tuple[int, int] = (120, 240)
"""Grey levels (exclusive bounds) of car bodies: above the road (99), below markings (254)."""
GAIN_RANGE: tuple[float, float] = (0.3, 1.5)
"""Contrast gains outside this range are taken for a failed estimate (the ego car hidden) and
not corrected."""
PHOTOMETRY_DEAD_BAND: tuple[float, float] = (0.15, 8.0)
"""A gain within this of 1 and a road level within this many grey levels of ``ROAD_LEVEL`` are
left as they are: pixel noise of std 6 moves the 9-pixel median of the ego body by up to ~8
levels (a gain of 1.1), and the levels' margins (road 99 to the car band's 120, markings 254 to
240) absorb such a change."""
SHARP_CONTRAST = 0.7
"""A frame whose ego outline keeps less than this share of its palette contrast is blurred."""
RIDGE_REACH_PX = 2
"""A marking ridge is brighter than the pixels this far [px] on both sides of it."""
RIDGE_MIN_LEVELS = 40.0
"""...by at least this many grey levels (a one-pixel line blurred by a 0.8 px kernel: ~75; a car
body's crown, 4 px wide: ~25)."""
CAR_CORE_PX = 4
"""Car bodies are at least this wide [px]; thinner bright structures are not cars."""
MIN_MARK_PIXELS = 4
"""Smallest group of ridge pixels kept as a marking (pixel noise makes single ones)."""


def restore(frame: np.ndarray, centre: tuple[float, float], scaling: float) -> np.ndarray:
    """``frame`` ``(H, W)`` uint8 with the ego car's body centred at pixel ``centre`` ``(u, v)``,
    at ``scaling`` [px/m], restored to the palette (the same array when nothing needs it)."""
    out = photometry(frame, centre)
    if outline_contrast(out, centre, scaling) < SHARP_CONTRAST:
        out = deblurred(out)
    return out


def photometry(frame: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """``frame`` with the linear grey-level change that moved the road and the ego body undone
    (the same array when the change is within ``PHOTOMETRY_DEAD_BAND`` or implausible)."""
    road = float(np.bincount(frame.ravel(), minlength=256).argmax())
    u, v = round(centre[0]), round(centre[1])
    ego = float(np.median(frame[max(v - 1, 0) : v + 2, max(u - 1, 0) : u + 2]))
    gain = (ego - road) / (EGO_BODY_LEVEL - ROAD_LEVEL)
    if not GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
        return frame
    if (
        abs(gain - 1.0) <= PHOTOMETRY_DEAD_BAND[0]
        and abs(road - ROAD_LEVEL) <= PHOTOMETRY_DEAD_BAND[1]
    ):
        return frame
    out = ROAD_LEVEL + (frame.astype(np.float32) - road) / gain
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def outline_contrast(frame: np.ndarray, centre: tuple[float, float], scaling: float) -> float:
    """The share of the palette's outline contrast (road minus outline) that the darkest pixel
    within the ego car's half length (plus 2 px) of ``centre`` keeps: 1 on a clean frame, less
    under blur (more under pixel noise or a dark blotch, which are not blur)."""
    h, w = frame.shape
    radius = 2.25 * scaling + 2  # half of the 4.5 m car, whatever its heading in the image
    vs, us = np.ogrid[0:h, 0:w]
    disc = (us - centre[0]) ** 2 + (vs - centre[1]) ** 2 <= radius**2
    low = float(frame[disc].min()) if disc.any() else float(OUTLINE_LEVEL)
    return (ROAD_LEVEL - low) / (ROAD_LEVEL - OUTLINE_LEVEL)


def ridge_strength(frame: np.ndarray, reach: int = RIDGE_REACH_PX) -> np.ndarray:
    """``(H, W)`` float32: by how much each pixel is brighter than both pixels ``reach`` [px]
    away, along the best of the four directions in which it is also at least as bright as both
    its neighbours (the crest across a line, whatever the line's direction; -inf elsewhere).
    The view is taken to continue as road beyond its border."""
    x = frame.astype(np.float32)
    padded = np.pad(x, reach, constant_values=ROAD_LEVEL)
    h, w = x.shape

    def shifted(dv: int, du: int) -> np.ndarray:
        return padded[reach + dv : reach + dv + h, reach + du : reach + du + w]

    best = np.full(x.shape, -np.inf, np.float32)
    for dv, du in ((0, 1), (1, 0), (1, 1), (1, -1)):
        crest = (x >= shifted(dv, du)) & (x >= shifted(-dv, -du))
        far = np.minimum(x - shifted(reach * dv, reach * du), x - shifted(-reach * dv, -reach * du))
        best = np.maximum(best, np.where(crest, far, -np.inf))
    return best


def deblurred(frame: np.ndarray) -> np.ndarray:
    """A blurred palette ``frame`` with its marking ridges painted ``MARKING_PALETTE_LEVEL`` and
    their halo painted road, car bodies left as they are (see the module docstring)."""
    lo, hi = CAR_BAND
    band = ((frame > lo) & (frame < hi)).astype(np.uint8)
    square = np.ones((CAR_CORE_PX, CAR_CORE_PX), np.uint8)
    # outside the view is not car (cv2's default border would make a line along it a car)
    cores = cv2.erode(band, square, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    cars = cv2.dilate(cores, np.ones((7, 7), np.uint8)) > 0
    ridges = (ridge_strength(frame) >= RIDGE_MIN_LEVELS) & ~cars
    # the outermost pixels: the blur mirrors a line just inside the border onto them
    ridges[[0, -1], :] = ridges[:, [0, -1]] = False
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        ridges.astype(np.uint8), connectivity=8
    )
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= MIN_MARK_PIXELS)
    marks = np.isin(labels, keep[keep > 0]) if count > 1 else np.zeros_like(ridges)
    halo = (cv2.dilate(marks.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~marks
    out = frame.copy()
    out[(halo | (band > 0)) & ~cars] = ROAD_LEVEL  # what is bright but thinner than a car
    out[marks] = MARKING_PALETTE_LEVEL
    return out
