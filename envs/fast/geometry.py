"""Every lane of a road network as arrays: lane coordinates, headings and positions of many points
at once, for straight, sine and circular lanes in any direction.

Each function repeats, element-wise and with the same numpy ufuncs in the same order, the stock
method it names (``StraightLane``/``SineLane``/``CircularLane`` ``local_coordinates``,
``heading_at``, ``position``, ``distance_with_heading``), so each element is bit-identical to the
stock scalar result. The stock ``np.dot`` of two 2-vectors (and ``np.linalg.norm``, which is
``sqrt(dot(x, x))``) runs BLAS ``ddot``; ``np.vecdot`` over a contiguous last axis runs the same
``ddot`` per row. Networks with another lane class (``PolyLane``...) get no :class:`LaneGeometry`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from highway_env.road.lane import AbstractLane, CircularLane, SineLane, StraightLane
from highway_env.road.road import LaneIndex, RoadNetwork

_F = np.float64
_PI, _TWO_PI, _HALF_PI = _F(np.pi), _F(2 * np.pi), _F(np.pi / 2)

STRAIGHT, SINE, CIRCULAR = 0, 1, 2
KINDS = {StraightLane: STRAIGHT, SineLane: SINE, CircularLane: CIRCULAR}
"""The lane classes covered (exact classes: a subclass may change the geometry)."""


def _wrap_to_pi(x: np.ndarray) -> np.ndarray:
    """``highway_env.utils.wrap_to_pi`` element-wise [rad]."""
    return ((x + _PI) % _TWO_PI) - _PI


def _stack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(..., 2)`` contiguous array of pairs ``(a, b)`` (contiguous: ``vecdot`` runs BLAS)."""
    return np.ascontiguousarray(np.stack(np.broadcast_arrays(a, b), axis=-1))


@dataclass(frozen=True)
class LaneParameters:
    """The geometry of lanes of one kind, as arrays that broadcast against the points (shapes
    ``(m,)`` or ``(m, 1)``; 2-vectors ``(m, 2)`` or ``(m, 1, 2)``).

    Attributes:
        start, direction, lateral: straight and sine lanes: start [m], unit direction and unit
            lateral direction.
        heading: straight and sine lanes: ``lane.heading`` [rad].
        amplitude [m], pulsation [rad/m], phase [rad]: sine lanes.
        center [m], radius [m], start_phase [rad], sense (``lane.direction``, +-1): circular lanes.
    """

    start: np.ndarray | None = None
    direction: np.ndarray | None = None
    lateral: np.ndarray | None = None
    heading: np.ndarray | None = None
    amplitude: np.ndarray | None = None
    pulsation: np.ndarray | None = None
    phase: np.ndarray | None = None
    center: np.ndarray | None = None
    radius: np.ndarray | None = None
    start_phase: np.ndarray | None = None
    sense: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> LaneParameters:
        """The parameters of lanes ``rows`` (of flat parameters, one lane per row)."""
        return LaneParameters(**{k: None if v is None else v[rows] for k, v in vars(self).items()})

    @classmethod
    def of(cls, kind: int, lanes: list[AbstractLane], column: bool) -> LaneParameters:
        """The parameters of ``lanes`` (all of ``kind``); ``column`` adds a points axis."""

        def a(values: list, pair: bool = False) -> np.ndarray:
            out = np.array(values, dtype=float)
            return out[:, None, :] if pair and column else out[:, None] if column else out

        if kind == CIRCULAR:
            return cls(
                center=a([lane.center for lane in lanes], pair=True),
                radius=a([lane.radius for lane in lanes]),
                start_phase=a([lane.start_phase for lane in lanes]),
                sense=a([lane.direction for lane in lanes]),
            )
        sine = kind == SINE
        return cls(
            start=a([lane.start for lane in lanes], pair=True),
            direction=a([lane.direction for lane in lanes], pair=True),
            lateral=a([lane.direction_lateral for lane in lanes], pair=True),
            heading=a([lane.heading for lane in lanes]),
            amplitude=a([lane.amplitude for lane in lanes]) if sine else None,
            pulsation=a([lane.pulsation for lane in lanes]) if sine else None,
            phase=a([lane.phase for lane in lanes]) if sine else None,
        )


def local_coordinates(
    kind: int, p: LaneParameters, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``lane.local_coordinates((x, y))`` element-wise: ``(longitudinal, lateral)`` [m]."""
    if kind == CIRCULAR:
        delta = _stack(x - p.center[..., 0], y - p.center[..., 1])
        phi = np.arctan2(delta[..., 1], delta[..., 0])
        phi = p.start_phase + _wrap_to_pi(phi - p.start_phase)
        r = np.sqrt(np.vecdot(delta, delta))
        return p.sense * (phi - p.start_phase) * p.radius, p.sense * (p.radius - r)
    delta = _stack(x - p.start[..., 0], y - p.start[..., 1])
    longitudinal = np.vecdot(delta, np.broadcast_to(p.direction, delta.shape))
    lateral = np.vecdot(delta, np.broadcast_to(p.lateral, delta.shape))
    if kind == SINE:
        lateral = lateral - p.amplitude * np.sin(p.pulsation * longitudinal + p.phase)
    return longitudinal, lateral


def heading_at(kind: int, p: LaneParameters, longitudinal: np.ndarray) -> np.ndarray:
    """``lane.heading_at(longitudinal)`` element-wise [rad]."""
    if kind == CIRCULAR:
        phi = p.sense * longitudinal / p.radius + p.start_phase
        return phi + _HALF_PI * p.sense
    if kind == SINE:
        return p.heading + np.arctan(
            p.amplitude * p.pulsation * np.cos(p.pulsation * longitudinal + p.phase)
        )
    return np.broadcast_to(p.heading, np.shape(longitudinal))


def position(
    kind: int, p: LaneParameters, longitudinal: np.ndarray, lateral: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``lane.position(longitudinal, lateral)`` element-wise: world ``(x, y)`` [m]."""
    if kind == CIRCULAR:
        phi = p.sense * longitudinal / p.radius + p.start_phase
        scale = p.radius - lateral * p.sense
        return p.center[..., 0] + scale * np.cos(phi), p.center[..., 1] + scale * np.sin(phi)
    if kind == SINE:
        lateral = lateral + p.amplitude * np.sin(p.pulsation * longitudinal + p.phase)
    return (
        p.start[..., 0] + longitudinal * p.direction[..., 0] + lateral * p.lateral[..., 0],
        p.start[..., 1] + longitudinal * p.direction[..., 1] + lateral * p.lateral[..., 1],
    )


@dataclass(frozen=True)
class GeoLane:
    """One lane of a :class:`LaneGeometry`, with the lane arithmetic of many points at once.

    Attributes:
        index: highway-env lane index ``(from, to, id)``.
        number: its position in the network's iteration order (a row of
            :meth:`LaneGeometry.local_all`).
        lane: the highway-env lane object.
        kind: :data:`STRAIGHT`, :data:`SINE` or :data:`CIRCULAR`.
        params: its :class:`LaneParameters` (shape ``(1,)``).
        length, width [m].
        on_lane_half_width: ``width / 2 + 1`` [m], the lateral bound of ``on_lane(margin=1)``.
        vehicle_length: the lane's ``VEHICLE_LENGTH`` [m] (longitudinal slack of ``on_lane``).
    """

    index: LaneIndex
    number: int
    lane: AbstractLane
    kind: int
    params: LaneParameters
    length: float
    width: float
    on_lane_half_width: float
    vehicle_length: float

    def local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(longitudinal, lateral)`` [m] of ``(n,)`` points."""
        return local_coordinates(self.kind, self.params, x, y)

    def longitudinal(self, xy: np.ndarray) -> float:
        """``lane.local_coordinates(xy)[0]`` [m] (the stock scalar call)."""
        return float(self.lane.local_coordinates(xy)[0])

    def position(self, longitudinal: np.ndarray, lateral: np.ndarray):
        """World ``(x, y)`` [m] of ``(n,)`` lane coordinates."""
        return position(self.kind, self.params, longitudinal, lateral)


class LaneGeometry:
    """All lanes of a road network, in the network's own iteration order; build with
    :meth:`of`, which returns ``None`` when a lane is of a class not in :data:`KINDS`."""

    def __init__(self, indexes: list[LaneIndex], lanes: list[AbstractLane]) -> None:
        kinds = [KINDS[type(lane)] for lane in lanes]
        self.lanes = [
            GeoLane(
                index=index,
                number=number,
                lane=lane,
                kind=kind,
                params=LaneParameters.of(kind, [lane], column=False),
                length=float(lane.length),
                width=float(lane.width),
                on_lane_half_width=lane.width / 2 + 1,
                vehicle_length=float(lane.VEHICLE_LENGTH),
            )
            for number, (index, lane, kind) in enumerate(zip(indexes, lanes, kinds, strict=True))
        ]
        self.by_index = {lane.index: lane for lane in self.lanes}
        self.by_lane = {id(lane.lane): lane for lane in self.lanes}
        """lane object ``id`` -> :class:`GeoLane`."""
        self.length = np.array([lane.length for lane in self.lanes])
        """``(L,)`` lane lengths [m]."""
        self._kind = np.array(kinds)
        self._slot = np.zeros(len(lanes), dtype=int)
        """Each lane's row among the lanes of its kind."""
        self._groups = []
        """Per kind present: ``(kind, row numbers in network order, (m, 1) parameters,
        (m, 1) lengths, (m,) parameters)``."""
        for kind in (STRAIGHT, SINE, CIRCULAR):
            rows = [k for k, k_kind in enumerate(kinds) if k_kind == kind]
            if rows:
                members = [lanes[k] for k in rows]
                self._slot[rows] = np.arange(len(rows))
                self._groups.append(
                    (
                        kind,
                        np.array(rows),
                        LaneParameters.of(kind, members, column=True),
                        np.array([lane.length for lane in members], dtype=float)[:, None],
                        LaneParameters.of(kind, members, column=False),
                    )
                )

    def __getstate__(self) -> dict:
        """Copies and pickles leave ``by_lane`` behind: its keys are the identities of this
        geometry's lane objects, which a copy's lanes do not share (``__setstate__`` rebuilds
        it)."""
        state = dict(vars(self))
        del state["by_lane"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.by_lane = {id(lane.lane): lane for lane in self.lanes}

    @classmethod
    def of(cls, network: RoadNetwork) -> LaneGeometry | None:
        """The geometry of ``network``, or ``None`` when a lane's class is not covered."""
        indexes, lanes = [], []
        for _from, to_dict in network.graph.items():
            for _to, lane_list in to_dict.items():
                for _id, lane in enumerate(lane_list):
                    if type(lane) not in KINDS:
                        return None
                    indexes.append((_from, _to, _id))
                    lanes.append(lane)
        return cls(indexes, lanes) if lanes else None

    def local_all(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``lane.local_coordinates((x[j], y[j]))`` of every lane ``i`` (network order) and
        point ``j``: ``(longitudinal, lateral)``, each ``(L, n)`` [m], one vectorised pass per
        lane kind.

        Args:
            x, y: ``(n,)`` positions [m].
        """
        longitudinal = np.empty((len(self.lanes), len(x)))
        lateral = np.empty((len(self.lanes), len(x)))
        for kind, rows, params, _, _ in self._groups:
            longitudinal[rows], lateral[rows] = local_coordinates(
                kind, params, x[None, :], y[None, :]
            )
        return longitudinal, lateral

    def closest(self, x: np.ndarray, y: np.ndarray, heading: np.ndarray) -> list[GeoLane]:
        """The closest lane to each of ``n`` poses, as ``get_closest_lane_index`` picks it
        (``distance_with_heading``, first minimum in network order).

        Args:
            x, y: ``(n,)`` positions [m].
            heading: ``(n,)`` headings [rad].
        """
        distance = np.empty((len(self.lanes), len(x)))
        for kind, rows, params, length, _ in self._groups:
            s, r = local_coordinates(kind, params, x[None, :], y[None, :])
            angle = np.abs(_wrap_to_pi(heading[None, :] - heading_at(kind, params, s)))
            distance[rows] = (
                np.abs(r) + np.maximum(s - length, 0) + np.maximum(0 - s, 0) + 1.0 * angle
            )
        lanes = self.lanes
        return [lanes[k] for k in np.argmin(distance, axis=0).tolist()]

    def heading_at(self, lanes: np.ndarray, longitudinal: np.ndarray) -> np.ndarray:
        """``(n,)`` lane headings [rad] at ``(n,)`` longitudinal coordinates [m], point ``i`` on
        lane number ``lanes[i]`` (network order)."""
        out = np.empty(len(lanes))
        kinds = self._kind[lanes]
        for kind, _, _, _, flat in self._groups:
            sel = np.flatnonzero(kinds == kind)
            if len(sel):
                out[sel] = heading_at(kind, flat.take(self._slot[lanes[sel]]), longitudinal[sel])
        return out

    def position(
        self, lanes: np.ndarray, longitudinal: np.ndarray, lateral: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """World ``(x, y)`` [m] of ``(n,)`` lane coordinates, point ``i`` on lane number
        ``lanes[i]`` (network order)."""
        x, y = np.empty(len(lanes)), np.empty(len(lanes))
        kinds = self._kind[lanes]
        for kind, _, _, _, flat in self._groups:
            sel = np.flatnonzero(kinds == kind)
            if len(sel):
                params = flat.take(self._slot[lanes[sel]])
                x[sel], y[sel] = position(kind, params, longitudinal[sel], lateral[sel])
        return x, y
