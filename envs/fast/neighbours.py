"""Preceding and following vehicles by binary search in per-lane sorted lists.

``Road.neighbour_vehicles`` scans every vehicle and object for every query. :class:`NeighbourIndex`
takes one snapshot of the positions, sorts the vehicles that are ``on_lane(margin=1)`` of each
lane by their longitudinal coordinate ``s`` (ties kept in road order), and answers each query by
bisection, with highway-env's exact semantics:

- candidates are ``road.vehicles + road.objects`` without landmarks and without the querying
  vehicle itself;
- the front vehicle has the smallest ``s_v >= s`` (on ties the last one in road order wins, as
  ``s_v <= s_front`` keeps replacing it);
- the rear vehicle has the largest ``s_v < s`` (on ties the first one in road order wins).
"""

from __future__ import annotations

import functools
from bisect import bisect_left

import numpy as np
from highway_env.road.road import LaneIndex
from highway_env.vehicle.objects import Landmark, RoadObject

from envs.fast.geometry import GeoLane
from envs.fast.lanes import AxisLane


@functools.cache
def _is_landmark(kind: type) -> bool:
    """``isinstance(obj, Landmark)`` for ``obj`` of class ``kind`` (cached: ABC checks are slow)."""
    return issubclass(kind, Landmark)


class NeighbourIndex:
    """A snapshot of where every candidate is, sorted per lane on first use.

    Args:
        candidates: ``road.vehicles + road.objects`` at snapshot time.
    """

    def __init__(self, candidates: list[RoadObject]) -> None:
        self.candidates = [c for c in candidates if not _is_landmark(type(c))]
        xy = np.array([c.position for c in self.candidates], dtype=float).reshape(-1, 2)
        self._x, self._y = xy[:, 0], xy[:, 1]
        self._sorted: dict[LaneIndex, tuple[list[float], list[RoadObject]]] = {}

    def _lane_list(self, lane: AxisLane | GeoLane) -> tuple[list[float], list[RoadObject]]:
        """``(s values ascending, candidates in that order)`` of the candidates on ``lane``."""
        entry = self._sorted.get(lane.index)
        if entry is None:
            s, r = lane.local(self._x, self._y)
            on = (
                (np.abs(r) <= lane.on_lane_half_width)
                & (-lane.vehicle_length <= s)
                & (s < lane.length + lane.vehicle_length)
            )
            members = np.flatnonzero(on)
            order = members[np.argsort(s[members], kind="stable")]
            entry = (s[order].tolist(), [self.candidates[k] for k in order.tolist()])
            self._sorted[lane.index] = entry
        return entry

    def neighbours(
        self, vehicle: RoadObject, lane: AxisLane | GeoLane
    ) -> tuple[RoadObject | None, RoadObject | None]:
        """``(front, rear)`` of ``vehicle`` on ``lane`` (either may be ``None``)."""
        s_list, objs = self._lane_list(lane)
        s = lane.longitudinal(vehicle.position)
        n = len(s_list)
        k = bisect_left(s_list, s)
        front = rear = None
        j = k
        while j < n and objs[j] is vehicle:
            j += 1
        if j < n:
            best, s_front = j, s_list[j]
            j += 1
            while j < n and s_list[j] == s_front:
                if objs[j] is not vehicle:
                    best = j
                j += 1
            front = objs[best]
        j = k - 1
        while j >= 0 and objs[j] is vehicle:
            j -= 1
        if j >= 0:
            best, s_rear = j, s_list[j]
            j -= 1
            while j >= 0 and s_list[j] == s_rear:
                if objs[j] is not vehicle:
                    best = j
                j -= 1
            rear = objs[best]
        return front, rear
