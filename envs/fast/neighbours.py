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

from envs.fast.geometry import GeoLane, LaneGeometry
from envs.fast.lanes import AxisLane


@functools.cache
def _is_landmark(kind: type) -> bool:
    """``isinstance(obj, Landmark)`` for ``obj`` of class ``kind`` (cached: ABC checks are slow)."""
    return issubclass(kind, Landmark)


class NeighbourIndex:
    """A snapshot of where every candidate is, sorted per lane on first use.

    Args:
        candidates: ``road.vehicles + road.objects`` at snapshot time.
        geometry: the road's :class:`~envs.fast.geometry.LaneGeometry`, to compute the lane
            coordinates of every candidate on every lane in one pass on first use (roads of
            :class:`GeoLane` lanes, whose per-lane arithmetic is costly); ``None``: lane by lane.
    """

    def __init__(self, candidates: list[RoadObject], geometry: LaneGeometry | None = None) -> None:
        self.candidates = [c for c in candidates if not _is_landmark(type(c))]
        xy = np.array([c.position for c in self.candidates], dtype=float).reshape(-1, 2)
        self._x, self._y = xy[:, 0], xy[:, 1]
        self._geometry = geometry
        self._all: tuple[np.ndarray, np.ndarray] | None = None
        """``geometry.local_all`` of the candidates, once computed."""
        self._column: dict[int, int] = {}
        """``id`` of a candidate -> its column in ``_all``."""
        self._sorted: dict[LaneIndex, tuple[list[float], list[RoadObject]]] = {}

    def _local_all(self) -> tuple[np.ndarray, np.ndarray]:
        """``geometry.local_all`` of the candidates, computed on first use."""
        if self._all is None:
            self._all = self._geometry.local_all(self._x, self._y)
            self._column = {id(c): k for k, c in enumerate(self.candidates)}
        return self._all

    def _local(self, lane: AxisLane | GeoLane) -> tuple[np.ndarray, np.ndarray]:
        """``(s, r)`` [m] of every candidate on ``lane``, ``(n,)`` each."""
        if self._geometry is None:
            return lane.local(self._x, self._y)
        s, r = self._local_all()
        return s[lane.number], r[lane.number]

    def _column_of(self, thing: RoadObject) -> int | None:
        """``thing``'s column in ``_all`` (``None`` when not a candidate or not computed)."""
        k = self._column.get(id(thing))
        return k if k is not None and self.candidates[k] is thing else None

    def longitudinal(self, thing: RoadObject, lane: AxisLane | GeoLane) -> float:
        """``lane.lane.local_coordinates(thing.position)[0]`` [m]: the snapshot's value for a
        candidate (the same position, the same arithmetic, so the same bits), else the lane's
        own computation."""
        k = self._column_of(thing) if self._geometry is not None else None
        if k is None:
            return lane.longitudinal(thing.position)
        return float(self._local_all()[0][lane.number, k])

    def local_many(
        self, things: list[RoadObject], lanes: list[GeoLane]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``lanes[i].lane.local_coordinates(things[i].position)`` for each ``i``: ``(s, r)``
        [m], ``(n,)`` each (roads with a geometry; a non-candidate takes the stock call)."""
        s_all, r_all = self._local_all()
        s, r = np.empty(len(things)), np.empty(len(things))
        for i, (thing, lane) in enumerate(zip(things, lanes, strict=True)):
            k = self._column_of(thing)
            if k is None:
                s[i], r[i] = lane.lane.local_coordinates(thing.position)
            else:
                s[i], r[i] = s_all[lane.number, k], r_all[lane.number, k]
        return s, r

    def _lane_list(self, lane: AxisLane | GeoLane) -> tuple[list[float], list[RoadObject]]:
        """``(s values ascending, candidates in that order)`` of the candidates on ``lane``."""
        entry = self._sorted.get(lane.index)
        if entry is None:
            s, r = self._local(lane)
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
        s = self.longitudinal(vehicle, lane)
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
