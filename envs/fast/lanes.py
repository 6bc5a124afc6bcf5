"""A flat table of the road's lanes, when every lane is a straight lane along +x.

On such a lane (highway-v0's road) highway-env's ``StraightLane.local_coordinates`` reduces to
``(x - x0, y - y0)`` *exactly*: the direction is ``(1, 0)`` and the lateral direction ``(-0, 1)``,
so the dot products only add exact zeros. The table keeps, per lane, the few floats that the
neighbour search and the closest-lane search need, and computes the closest lane of many
vehicles at once with the same arithmetic as ``RoadNetwork.get_closest_lane_index``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from highway_env.road.lane import StraightLane
from highway_env.road.road import LaneIndex, RoadNetwork


@dataclass(frozen=True)
class AxisLane:
    """One straight lane along +x.

    Attributes:
        index: highway-env lane index ``(from, to, id)``.
        lane: the highway-env lane object.
        x0, y0: the lane's start [m].
        length: [m].
        width: [m].
        heading: [rad] (0 up to rounding; highway-env's own value).
        on_lane_half_width: ``width / 2 + 1`` [m], the lateral bound of ``on_lane(margin=1)``.
        vehicle_length: the lane's ``VEHICLE_LENGTH`` [m] (longitudinal slack of ``on_lane``).
    """

    index: LaneIndex
    lane: StraightLane
    x0: float
    y0: float
    length: float
    width: float
    heading: float
    on_lane_half_width: float
    vehicle_length: float

    def local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(longitudinal, lateral)`` [m] of ``(n,)`` points."""
        return x - self.x0, y - self.y0

    def longitudinal(self, xy: np.ndarray) -> float:
        """``lane.local_coordinates(xy)[0]`` [m]."""
        return float(xy[0]) - self.x0


class AxisLaneTable:
    """All lanes of a road network, in the network's own iteration order.

    Build with :meth:`of`, which returns ``None`` unless every lane is a straight lane along +x.
    """

    def __init__(self, lanes: list[AxisLane]) -> None:
        self.lanes = lanes
        self.by_index = {lane.index: lane for lane in lanes}
        self.by_lane = {id(lane.lane): lane for lane in lanes}
        """lane object ``id`` -> :class:`AxisLane`."""
        self._x0 = np.array([lane.x0 for lane in lanes])[:, None]
        self._y0 = np.array([lane.y0 for lane in lanes])[:, None]
        self._length = np.array([lane.length for lane in lanes])[:, None]
        self._heading = np.array([lane.heading for lane in lanes])[:, None]

    def __getstate__(self) -> dict:
        """Copies and pickles leave ``by_lane`` behind: its keys are the identities of this
        table's lane objects, which a copy's lanes do not share (``__setstate__`` rebuilds it)."""
        state = dict(vars(self))
        del state["by_lane"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.by_lane = {id(lane.lane): lane for lane in self.lanes}

    @classmethod
    def of(cls, network: RoadNetwork) -> AxisLaneTable | None:
        """The table of ``network``, or ``None`` when a lane is not straight along +x."""
        lanes = []
        for _from, to_dict in network.graph.items():
            for _to, lane_list in to_dict.items():
                for _id, lane in enumerate(lane_list):
                    if type(lane) is not StraightLane or not (
                        lane.direction[0] == 1.0 and lane.direction[1] == 0.0
                    ):
                        return None
                    lanes.append(
                        AxisLane(
                            index=(_from, _to, _id),
                            lane=lane,
                            x0=float(lane.start[0]),
                            y0=float(lane.start[1]),
                            length=float(lane.length),
                            width=float(lane.width),
                            heading=float(lane.heading),
                            on_lane_half_width=lane.width / 2 + 1,
                            vehicle_length=float(lane.VEHICLE_LENGTH),
                        )
                    )
        return cls(lanes) if lanes else None

    def reachable(self, lane: AxisLane, x: float, y: float) -> bool:
        """``lane.lane.is_reachable_from((x, y))``."""
        if lane.lane.forbidden:
            return False
        s = x - lane.x0
        return abs(y - lane.y0) <= 2 * lane.width and 0 <= s < lane.length + lane.vehicle_length

    def closest(self, x: np.ndarray, y: np.ndarray, heading: np.ndarray) -> list[AxisLane]:
        """The closest lane to each of ``n`` poses, as ``get_closest_lane_index`` picks it.

        Args:
            x, y: ``(n,)`` positions [m].
            heading: ``(n,)`` headings [rad].
        """
        s = x[None, :] - self._x0
        r = y[None, :] - self._y0
        angle = np.abs(((heading[None, :] - self._heading) + np.pi) % (2 * np.pi) - np.pi)
        distance = np.abs(r) + np.maximum(s - self._length, 0) + np.maximum(0 - s, 0) + 1.0 * angle
        lanes = self.lanes
        return [lanes[k] for k in np.argmin(distance, axis=0).tolist()]
