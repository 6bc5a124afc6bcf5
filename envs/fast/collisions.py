"""Which pairs of road objects ``Road.step``'s collision loop could affect, found at once.

``Road.step`` calls ``a.handle_collisions(b, dt)`` for every vehicle ``a`` and every later
vehicle or object ``b``; a call changes nothing unless highway-env's separating-axis test
(``utils.are_polygons_intersecting``) finds the two boxes intersecting or about to. A pair can be
skipped, with the same outcome, when

- the stock spherical pre-check rejects it (centres farther apart than half the two diagonals
  plus ``a``'s travel over ``dt``), or
- one of ``a``'s two axes separates the boxes by more than their relative displacement over
  ``dt`` (the stock test then sets both flags to ``False`` on that axis, for good).

Both tests are evaluated with :data:`SLACK_M` in favour of keeping the pair, far above rounding.
"""

from __future__ import annotations

import numpy as np
from highway_env.vehicle.objects import RoadObject

SLACK_M = 1e-6
"""Margin [m] by which a pair must be clear to be skipped."""


def collision_candidates(things: list[RoadObject], n: int, dt: float) -> list[tuple[int, int]]:
    """``(i, j)`` pairs, ``i < n``, ``i < j``, in lexicographic (stock) order, that may touch.

    Args:
        things: ``road.vehicles + road.objects``.
        n: how many of ``things`` are vehicles (only those start a check).
        dt: the simulation step [s].
    """
    if n == 0 or len(things) < 2:
        return []
    xy = np.array([t.position for t in things], dtype=float)
    diagonal = np.array([t.diagonal for t in things], dtype=float)
    speed = np.array([t.speed for t in things], dtype=float)
    reach = (diagonal[:n, None] + diagonal[None, :]) / 2 + SLACK_M
    reach += np.maximum(speed[:n] * dt, 0)[:, None]
    offset = xy[None, :, :] - xy[:n, None, :]
    close = np.einsum("ijk,ijk->ij", offset, offset) <= reach * reach
    close &= np.arange(len(things))[None, :] > np.arange(n)[:, None]
    first, second = np.nonzero(close)
    if len(first) == 0:
        return []
    heading = np.array([t.heading for t in things], dtype=float)
    half_length = np.array([t.LENGTH for t in things], dtype=float) / 2
    half_width = np.array([t.WIDTH for t in things], dtype=float) / 2
    velocity = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    cos_a, sin_a = np.cos(heading[first]), np.sin(heading[first])
    d = offset[first, second]
    travel = (velocity[first] - velocity[second]) * dt
    cos_ab = np.abs(np.cos(heading[second] - heading[first]))
    sin_ab = np.abs(np.sin(heading[second] - heading[first]))
    along = (
        np.abs(d[:, 0] * cos_a + d[:, 1] * sin_a)
        - half_length[first]
        - cos_ab * half_length[second]
        - sin_ab * half_width[second]
        - np.abs(travel[:, 0] * cos_a + travel[:, 1] * sin_a)
    )
    across = (
        np.abs(d[:, 1] * cos_a - d[:, 0] * sin_a)
        - half_width[first]
        - sin_ab * half_length[second]
        - cos_ab * half_width[second]
        - np.abs(travel[:, 1] * cos_a - travel[:, 0] * sin_a)
    )
    touching = (along <= SLACK_M) & (across <= SLACK_M)
    return list(zip(first[touching].tolist(), second[touching].tolist(), strict=True))
