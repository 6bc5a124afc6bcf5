"""A highway-env ``Road`` that simulates the same traffic with far fewer Python operations.

:class:`FastRoad` keeps highway-env's vehicle objects and their state as the single source of
truth and only replaces how the road loops over them, when no trajectory history is recorded.
When every lane is a straight lane along +x (:class:`~envs.fast.lanes.AxisLaneTable`, highway-v0)
it replaces all of the following; when the lanes are straight, sine or circular lanes in any
direction (:class:`~envs.fast.geometry.LaneGeometry`: merge, racetrack, roundabout, exit roads)
it replaces the neighbour search (the lane coordinates of every car on every lane in one pass
per snapshot), ``step``, and the driving half of ``act``: every driver decides vehicle by vehicle
with the stock ``follow_road`` and ``change_lane_policy`` (those roads carry a handful of cars,
routes and lane ends, where a MOBIL batch would not pay), then the steering and IDM acceleration
of all drivers are computed in one vectorised pass (:meth:`FastRoad._drive_on_geometry`):

- ``neighbour_vehicles``: binary search in per-lane sorted snapshots
  (:class:`~envs.fast.neighbours.NeighbourIndex`), rebuilt when a vehicle moved or the vehicle
  list changed;
- ``act``: every MOBIL evaluation of the step is computed in one vectorised IDM batch
  (:class:`~envs.fast.idm.AccelerationBatch`) and the verdicts applied in road order, where the
  order-dependent decision (abandoning a lane change someone else started) runs with
  highway-env's own method; at a lane end (``follow_road``) every decision runs vehicle by vehicle
  with highway-env's methods instead. The steering and IDM acceleration of every driver are
  then computed in one vectorised pass (:mod:`envs.fast.idm`), with each driver's own parameters;
- ``step``: the kinematic bicycle update and the closest-lane search of every mover in one
  vectorised pass, then highway-env's ``handle_collisions`` in the stock order on the pairs that
  could touch (:mod:`envs.fast.collisions`).

Every vectorised expression repeats the stock one operation for operation with the same numpy
ufuncs, so the results are bit-identical to stock highway-env (``tests/test_fast_sim.py``).

Which path a vehicle takes depends on the methods its class runs, not on its exact class: a
*driver* is an :class:`IDMVehicle` whose decision and control methods are all highway-env's own
(:data:`DRIVING_METHODS`), a *mover* a :class:`Vehicle` whose ``step`` and ``on_state_update``
are (an ``IDMVehicle`` subclass that only changes constants is both). Any other vehicle acts and
steps through its own methods, in road order (e.g. ``LinearVehicle`` and its subclasses
``AggressiveVehicle`` and ``DefensiveVehicle`` act through their own ``acceleration`` and
``steering_control``, and still move in the vectorised pass). Anything that moves a vehicle
outside ``Road.step`` must be followed by a new ``act``/``step`` (or a change of
``road.vehicles``) before ``neighbour_vehicles`` sees it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import numpy as np
from highway_env.road.road import LaneIndex, Road
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import RoadObject

from envs.fast import idm
from envs.fast.collisions import collision_candidates
from envs.fast.geometry import LaneGeometry
from envs.fast.lanes import AxisLaneTable
from envs.fast.neighbours import NeighbourIndex

_VERSIONS = itertools.count()

DRIVING_METHODS = (
    "act",
    "acceleration",
    "desired_gap",
    "steering_control",
    "change_lane_policy",
    "mobil",
    "follow_road",
)
"""The methods of ``IDMVehicle.act`` that the vectorised decisions and driving reproduce or call."""
MOVING_METHODS = ("step", "on_state_update")
"""The methods of ``IDMVehicle.step``/``Vehicle.step`` that :meth:`FastRoad._move` reproduces
(it calls each vehicle's own ``clip_actions``)."""
_IDM_LINEAGE = frozenset(IDMVehicle.__mro__)
"""IDMVehicle, ControlledVehicle, Vehicle, RoadObject and their bases."""

DRIVE, IDLE, OWN = "drive", "idle", "own"
"""How a vehicle acts: vectorised as a driver, not at all (``Vehicle.act`` without an action keeps
the action it has), through its own ``act``."""
TIMED_MOVE, MOVE = "timed move", "move"
"""How a vehicle steps besides ``OWN``: vectorised after advancing its MOBIL timer
(``IDMVehicle.step``), vectorised (``Vehicle.step``)."""


def _runs_stock(kind: type, names: tuple[str, ...]) -> bool:
    """Whether ``kind`` runs highway-env's own methods ``names``: no class of its MRO outside
    IDMVehicle's lineage defines one (so neither ``kind.name`` nor a ``super()`` call within the
    lineage reaches a method of a subclass or a mixin)."""
    return not any(name in vars(c) for c in kind.__mro__ if c not in _IDM_LINEAGE for name in names)


@functools.cache
def act_role(kind: type) -> str:
    """How a vehicle of class ``kind`` acts: :data:`DRIVE`, :data:`IDLE` or :data:`OWN`."""
    if issubclass(kind, IDMVehicle) and _runs_stock(kind, DRIVING_METHODS):
        return DRIVE
    if getattr(kind, "act", None) is Vehicle.act:
        return IDLE
    return OWN


@functools.cache
def step_role(kind: type) -> str:
    """How a vehicle of class ``kind`` steps: :data:`TIMED_MOVE`, :data:`MOVE` or :data:`OWN`."""
    if not issubclass(kind, Vehicle) or not _runs_stock(kind, MOVING_METHODS):
        return OWN
    return TIMED_MOVE if issubclass(kind, IDMVehicle) else MOVE


class VersionedList(list):
    """A list that takes a fresh, globally unique ``version`` at creation and on every change."""

    def __init__(self, items=()) -> None:
        super().__init__(items)
        self.version = next(_VERSIONS)


def _mutating(name: str):
    base = getattr(list, name)

    def method(self, *args, **kwargs):
        self.version = next(_VERSIONS)
        return base(self, *args, **kwargs)

    method.__name__ = name
    return method


for _name in (
    "__setitem__",
    "__delitem__",
    "__iadd__",
    "__imul__",
    "append",
    "extend",
    "insert",
    "pop",
    "remove",
    "clear",
    "sort",
    "reverse",
):
    setattr(VersionedList, _name, _mutating(_name))


class FastRoad(Road):
    """A :class:`Road` with vectorised traffic; build it with :meth:`adopt`."""

    @classmethod
    def adopt(cls, road: Road) -> FastRoad:
        """A FastRoad with ``road``'s network, vehicles, objects and random generator; every
        vehicle and object is re-pointed at it. ``road`` must be a plain :class:`Road` (a
        subclass's own ``act``/``step`` would be lost)."""
        if type(road) is not Road:
            raise TypeError(f"FastRoad adopts a plain Road, not a {type(road).__name__}")
        fast = cls.__new__(cls)
        state = dict(vars(road))
        vehicles, objects = state.pop("vehicles"), state.pop("objects")
        fast.__dict__.update(state)
        network = road.network
        fast.table = AxisLaneTable.of(network) if network is not None else None
        fast.geometry = LaneGeometry.of(network) if network is not None else None
        fast._epoch = 0
        fast._index: NeighbourIndex | None = None
        fast._index_key: tuple[int, int, int] | None = None
        fast.vehicles, fast.objects = vehicles, objects
        for thing in [*fast.vehicles, *fast.objects]:
            thing.road = fast
        return fast

    def __getstate__(self) -> dict:
        """Copies and pickles leave the neighbour index behind (rebuilt on first use)."""
        state = dict(vars(self))
        state["_index"] = state["_index_key"] = None
        return state

    @property
    def vehicles(self) -> VersionedList:
        return self._vehicles

    @vehicles.setter
    def vehicles(self, value) -> None:
        self._vehicles = VersionedList(value)

    @property
    def objects(self) -> VersionedList:
        return self._objects

    @objects.setter
    def objects(self, value) -> None:
        self._objects = VersionedList(value)

    @property
    def vectorised(self) -> bool:
        """Whether ``act`` takes the vectorised path (and ``step`` does)."""
        return self.table is not None and not self.record_history

    @property
    def moves_vectorised(self) -> bool:
        """Whether ``step`` takes the vectorised path: lanes of any covered geometry."""
        return self.geometry is not None and not self.record_history

    # -- neighbours ----------------------------------------------------------------------------
    def neighbour_vehicles(
        self, vehicle: RoadObject, lane_index: LaneIndex = None
    ) -> tuple[RoadObject | None, RoadObject | None]:
        lane_index = lane_index or vehicle.lane_index
        lane = None
        if lane_index and not self.neighbour_vehicles_connected_lanes:
            if self.table is not None:
                lane = self.table.by_index.get(lane_index)
            elif self.geometry is not None:
                lane = self.geometry.by_index.get(lane_index)
        if lane is None:
            return super().neighbour_vehicles(vehicle, lane_index)
        return self._neighbour_index().neighbours(vehicle, lane)

    def _neighbour_index(self) -> NeighbourIndex:
        key = (self._vehicles.version, self._objects.version, self._epoch)
        if self._index_key != key:
            geometry = self.geometry if self.table is None else None
            self._index = NeighbourIndex([*self._vehicles, *self._objects], geometry)
            self._index_key = key
        return self._index

    # -- decisions -----------------------------------------------------------------------------
    def act(self) -> None:
        self._epoch += 1
        if self.table is None and self.moves_vectorised:
            drivers = self._decide_on_geometry()
            if drivers:
                self._drive_on_geometry(drivers)
            return
        if not self.vectorised:
            super().act()
            return
        by_index = self.table.by_index
        drivers = [v for v in self._vehicles if act_role(type(v)) == DRIVE and not v.crashed]
        batchable = all(
            v.lane_index in by_index
            and v.target_lane_index in by_index
            and not self._at_lane_end(v)
            for v in drivers
        )
        if batchable:
            self._decide_batched(drivers)
        else:
            drivers = self._decide_in_order()
        if drivers:
            self._drive(drivers)

    def _at_lane_end(self, v: IDMVehicle) -> bool:
        """``get_lane(v.target_lane_index).after_end(v.position)`` (a lane in the table)."""
        target = self.table.by_index[v.target_lane_index]
        return float(v.position[0]) - target.x0 > target.length - target.vehicle_length / 2

    def _decide_in_order(self) -> list[IDMVehicle]:
        """``IDMVehicle.act``'s decisions vehicle by vehicle with the stock methods (lane ends:
        ``follow_road`` may draw from the random generator); returns the drivers left to drive."""
        by_index = self.table.by_index
        drivers = []
        for v in self._vehicles:
            role = act_role(type(v))
            if role == DRIVE:
                if v.crashed:
                    continue
                if v.lane_index not in by_index or v.target_lane_index not in by_index:
                    v.act()
                    continue
                if self._at_lane_end(v):
                    v.follow_road()
                if v.enable_lane_change and (
                    v.lane_index != v.target_lane_index or v.timer > v.LANE_CHANGE_DELAY
                ):
                    v.change_lane_policy()
                if v.target_lane_index not in by_index:
                    raise RuntimeError(f"lane {v.target_lane_index} left the lane table")
                drivers.append(v)
            elif role == OWN:
                v.act()
        return drivers

    def _decide_batched(self, drivers: list[IDMVehicle]) -> None:
        """The same decisions, with every MOBIL evaluation of this step in one batch.

        MOBIL reads only positions, speeds and lanes, which no decision changes, so it can be
        evaluated up front; its verdicts are applied in road order, where a vehicle abandoning a
        contested lane change sees the targets of the vehicles before it already updated.
        """
        proposals = self._mobil_batch(
            [
                v
                for v in drivers
                if v.enable_lane_change
                and v.lane_index == v.target_lane_index
                and v.timer > v.LANE_CHANGE_DELAY
            ]
        )
        for v in self._vehicles:
            role = act_role(type(v))
            if role == DRIVE:
                if v.crashed or not v.enable_lane_change:
                    continue
                if v.lane_index != v.target_lane_index:
                    v.change_lane_policy()  # maybe abandon a lane change someone else started
                elif v.timer > v.LANE_CHANGE_DELAY:
                    v.timer = 0
                    for lane_index, verdict in proposals[v]:
                        if verdict is None:
                            verdict = v.mobil(lane_index)
                        if verdict:
                            v.target_lane_index = lane_index
            elif role == OWN:
                v.act()

    def _mobil_batch(self, deciders: list[IDMVehicle]) -> dict[IDMVehicle, list[tuple]]:
        """For each decider, ``[(side lane index, MOBIL verdict)]`` over the side lanes its
        ``change_lane_policy`` would try (reachable, moving); the verdict is ``None`` where the
        stock ``mobil`` must decide (a planned route)."""
        table, index = self.table, self._neighbour_index()
        batch = idm.AccelerationBatch(table.by_lane, idm.DriverParameters(deciders))
        pending: dict[IDMVehicle, list[tuple]] = {}
        for k, v in enumerate(deciders):
            x, y = float(v.position[0]), float(v.position[1])
            tries = []
            for lane_index in self.network.side_lanes(v.lane_index):
                lane = table.by_index[lane_index]
                if not table.reachable(lane, x, y) or abs(v.speed) < 1:
                    continue
                if v.route and v.route[0][2] is not None:
                    tries.append((lane_index, None))
                    continue
                new_front, new_rear = index.neighbours(v, lane)
                old_front, old_rear = index.neighbours(v, table.by_index[v.lane_index])
                rows = (
                    batch.add(k, v, new_rear, new_front),
                    batch.add(k, v, new_rear, v),
                    batch.add(k, v, v, new_front),
                    batch.add(k, v, v, old_front),
                    batch.add(k, v, old_rear, v),
                    batch.add(k, v, old_rear, old_front),
                )
                tries.append((lane_index, rows))
            pending[v] = tries
        values = batch.evaluate()
        proposals = {}
        for v, tries in pending.items():
            verdicts = []
            for lane_index, rows in tries:
                if rows is None:
                    verdicts.append((lane_index, None))
                    continue
                new_rear_a, new_rear_pred_a, self_pred_a, self_a, old_rear_a, old_rear_pred_a = (
                    values[k] for k in rows
                )
                if new_rear_pred_a < -v.LANE_CHANGE_MAX_BRAKING_IMPOSED:
                    verdicts.append((lane_index, False))
                    continue
                jerk = (
                    self_pred_a
                    - self_a
                    + v.POLITENESS * (new_rear_pred_a - new_rear_a + old_rear_pred_a - old_rear_a)
                )
                verdicts.append((lane_index, not jerk < v.LANE_CHANGE_MIN_ACC_GAIN))
            proposals[v] = verdicts
        return proposals

    def _drive(self, drivers: list[IDMVehicle]) -> None:
        """Set every driver's ``action`` as ``IDMVehicle.act`` would after its decisions."""
        by_index = self.table.by_index
        index = self._neighbour_index()
        params = idm.DriverParameters(drivers)
        batch = idm.AccelerationBatch(self.table.by_lane, params)
        accel = _idm_accelerations(
            batch, drivers, lambda v, lane: index.neighbours(v, by_index[lane])[0], params.acc_max
        )

        targets = [by_index[v.target_lane_index] for v in drivers]
        steer = idm.steering(
            np.array([v.position[1] for v in drivers], dtype=float)
            - np.array([t.y0 for t in targets]),
            np.array([t.heading for t in targets]),
            np.array([v.heading for v in drivers], dtype=float),
            np.array([v.speed for v in drivers], dtype=float),
            params,
        )
        for v, s, a in zip(drivers, steer.tolist(), accel.tolist(), strict=True):
            v.action = {"steering": s, "acceleration": a}

    def _decide_on_geometry(self) -> list[IDMVehicle]:
        """``IDMVehicle.act``'s decisions (``follow_road``, which may draw from the random
        generator, and ``change_lane_policy``) vehicle by vehicle in road order with the stock
        methods, other vehicles acting through their own ``act``; returns the drivers left to
        drive (those on lanes of the geometry)."""
        by_index = self.geometry.by_index
        drivers = []
        for v in self._vehicles:
            role = act_role(type(v))
            if role == DRIVE:
                if v.crashed:
                    continue
                if v.lane_index not in by_index:
                    v.act()
                    continue
                v.follow_road()
                if v.enable_lane_change:
                    v.change_lane_policy()
                if v.target_lane_index not in by_index:
                    raise RuntimeError(f"lane {v.target_lane_index} left the lane geometry")
                drivers.append(v)
            elif role == OWN:
                v.act()
        return drivers

    def _drive_on_geometry(self, drivers: list[IDMVehicle]) -> None:
        """:meth:`_drive` on lanes of any covered geometry: the lane coordinates come from the
        neighbour snapshot (the positions have not changed since), the pursuit heading from
        ``heading_at`` ``TAU_PURSUIT`` seconds ahead on the target lane."""
        geometry, index = self.geometry, self._neighbour_index()
        params = idm.DriverParameters(drivers)
        batch = idm.AccelerationBatch(geometry.by_lane, params, index.longitudinal)
        accel = _idm_accelerations(
            batch, drivers, lambda v, lane: self.neighbour_vehicles(v, lane)[0], params.acc_max
        )

        targets = [geometry.by_index[v.target_lane_index] for v in drivers]
        numbers = np.array([t.number for t in targets])
        s, r = index.local_many(drivers, targets)
        speed = np.array([v.speed for v in drivers], dtype=float)
        tau = np.array([v.TAU_PURSUIT for v in drivers], dtype=float)
        steer = idm.steering(
            r,
            geometry.heading_at(numbers, s + speed * tau),
            np.array([v.heading for v in drivers], dtype=float),
            speed,
            params,
        )
        for v, st, a in zip(drivers, steer.tolist(), accel.tolist(), strict=True):
            v.action = {"steering": st, "acceleration": a}

    # -- dynamics ------------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        if not self.moves_vectorised:
            super().step(dt)
            self._epoch += 1
            return
        movers = []
        for v in self._vehicles:
            role = step_role(type(v))
            if role == TIMED_MOVE:
                v.timer += dt
                movers.append(v)
            elif role == MOVE:
                movers.append(v)
            else:
                v.step(dt)
        if movers:
            self._move(movers, dt)
        self._epoch += 1
        self._collide(dt)

    def _move(self, movers: list[Vehicle], dt: float) -> None:
        """``Vehicle.step`` (bicycle model, impacts, closest lane) for every mover at once."""
        for v in movers:
            v.clip_actions()
        steer = np.array([v.action["steering"] for v in movers], dtype=float)
        accel = np.array([v.action["acceleration"] for v in movers], dtype=float)
        xy = np.array([v.position for v in movers])
        heading = np.array([v.heading for v in movers], dtype=float)
        speed = np.array([v.speed for v in movers], dtype=float)
        half_length = np.array([v.LENGTH / 2 for v in movers], dtype=float)

        dt = np.float64(dt)  # same value; numpy scalars multiply arrays faster
        beta = np.arctan(np.float64(1 / 2) * np.tan(steer))
        x = xy[:, 0] + (speed * np.cos(heading + beta)) * dt
        y = xy[:, 1] + (speed * np.sin(heading + beta)) * dt
        for k, v in enumerate(movers):
            if v.impact is not None:
                x[k] += v.impact[0]
                y[k] += v.impact[1]
                v.crashed = True
                v.impact = None
        heading = heading + speed * np.sin(beta) / half_length * dt
        speed = speed + accel * dt
        lanes = (self.geometry if self.table is None else self.table).closest(x, y, heading)
        for v, xk, yk, hk, sk, lane in zip(
            movers, x.tolist(), y.tolist(), heading.tolist(), speed.tolist(), lanes, strict=True
        ):
            position = v.position
            position[0] = xk
            position[1] = yk
            v.heading = hk
            v.speed = sk
            v.lane_index = lane.index
            v.lane = lane.lane

    def _collide(self, dt: float) -> None:
        """``Road.step``'s collision loop, in the stock order, on the pairs it could affect."""
        things = [*self._vehicles, *self._objects]
        for i, j in collision_candidates(things, len(self._vehicles), dt):
            things[i].handle_collisions(things[j], dt)


def _idm_accelerations(
    batch: idm.AccelerationBatch,
    drivers: list[IDMVehicle],
    leader: Callable[[IDMVehicle, LaneIndex], Vehicle | None],
    acc_max: float,
) -> np.ndarray:
    """``(N,)`` IDM accelerations [m/s²] of ``drivers``, as ``IDMVehicle.act`` computes them:
    behind the ``leader`` in its lane, and while changing lanes the smaller of that and the one
    behind the target lane's leader, clipped to ``±acc_max``; evaluated in one batch."""
    current, target = [], []
    for k, v in enumerate(drivers):
        current.append(batch.add(k, v, v, leader(v, v.lane_index)))
        if v.lane_index != v.target_lane_index:
            target.append(batch.add(k, v, v, leader(v, v.target_lane_index)))
        else:
            target.append(None)
    values = batch.evaluate()
    accel = [
        values[cur] if tgt is None else min(values[cur], values[tgt])
        for cur, tgt in zip(current, target, strict=True)
    ]
    return np.clip(np.array(accel, dtype=float), -acc_max, acc_max)
