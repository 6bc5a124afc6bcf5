"""A highway-env ``Road`` that simulates the same traffic with far fewer Python operations.

:class:`FastRoad` keeps highway-env's vehicle objects and their state as the single source of
truth and only replaces how the road loops over them, when every lane is a straight lane along +x
(:class:`~envs.fast.lanes.AxisLaneTable`) and no trajectory history is recorded:

- ``neighbour_vehicles``: binary search in per-lane sorted snapshots
  (:class:`~envs.fast.neighbours.NeighbourIndex`), rebuilt when a vehicle moved or the vehicle
  list changed;
- ``act``: the decisions that depend on the order of the vehicles (following the road,
  lane-change policy with MOBIL) run vehicle by vehicle with highway-env's own methods; the
  steering and IDM acceleration of every :class:`IDMVehicle` are then computed in one vectorised
  pass (:mod:`envs.fast.idm`);
- ``step``: the kinematic bicycle update and the closest-lane search of every ``Vehicle`` and
  ``IDMVehicle`` in one vectorised pass, then a vectorised broad phase for collisions that calls
  highway-env's ``handle_collisions`` only on pairs close enough to touch, in the stock order.

Vehicles of any other class act and step through their own methods, in road order. Anything
that moves a vehicle outside ``Road.step`` must be followed by a new ``act``/``step`` (or a change
of ``road.vehicles``) before ``neighbour_vehicles`` sees it.
"""

from __future__ import annotations

import itertools

import numpy as np
from highway_env.road.road import LaneIndex, Road
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import RoadObject

from envs.fast import idm
from envs.fast.lanes import AxisLaneTable
from envs.fast.neighbours import NeighbourIndex

_VERSIONS = itertools.count()
_BROAD_PHASE_SLACK_M = 1e-6
"""Extra reach [m] of the collision broad phase, so rounding never drops a pair stock checks."""


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


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(VersionedList, _name, _mutating(_name))


class FastRoad(Road):
    """A :class:`Road` with vectorised traffic; build it with :meth:`adopt`."""

    @classmethod
    def adopt(cls, road: Road) -> FastRoad:
        """A FastRoad with ``road``'s network, vehicles, objects and random generator; every
        vehicle and object is re-pointed at it."""
        fast = cls.__new__(cls)
        state = dict(vars(road))
        vehicles, objects = state.pop("vehicles"), state.pop("objects")
        fast.__dict__.update(state)
        fast.table = AxisLaneTable.of(road.network) if road.network is not None else None
        fast._epoch = 0
        fast._index: NeighbourIndex | None = None
        fast._index_key: tuple[int, int, int] | None = None
        fast.vehicles, fast.objects = vehicles, objects
        for thing in [*fast.vehicles, *fast.objects]:
            thing.road = fast
        return fast

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
        """Whether ``act`` and ``step`` take the vectorised path."""
        return self.table is not None and not self.record_history

    # -- neighbours ----------------------------------------------------------------------------
    def neighbour_vehicles(
        self, vehicle: RoadObject, lane_index: LaneIndex = None
    ) -> tuple[RoadObject | None, RoadObject | None]:
        lane_index = lane_index or vehicle.lane_index
        lane = None
        if lane_index and self.table is not None and not self.neighbour_vehicles_connected_lanes:
            lane = self.table.by_index.get(lane_index)
        if lane is None:
            return super().neighbour_vehicles(vehicle, lane_index)
        return self._neighbour_index().neighbours(vehicle, lane)

    def _neighbour_index(self) -> NeighbourIndex:
        key = (self._vehicles.version, self._objects.version, self._epoch)
        if self._index_key != key:
            self._index = NeighbourIndex(self.table, [*self._vehicles, *self._objects])
            self._index_key = key
        return self._index

    # -- decisions -----------------------------------------------------------------------------
    def act(self) -> None:
        self._epoch += 1
        if not self.vectorised:
            super().act()
            return
        by_index = self.table.by_index
        drivers = []
        for v in self._vehicles:
            kind = type(v)
            if kind is IDMVehicle:
                if v.crashed:
                    continue
                if v.lane_index not in by_index or v.target_lane_index not in by_index:
                    v.act()
                    continue
                target = by_index[v.target_lane_index]
                if float(v.position[0]) - target.x0 > target.length - target.vehicle_length / 2:
                    v.follow_road()
                if v.enable_lane_change and (
                    v.lane_index != v.target_lane_index or v.timer > v.LANE_CHANGE_DELAY
                ):
                    v.change_lane_policy()  # MOBIL, or abandoning a contested lane change
                if v.target_lane_index not in by_index:
                    raise RuntimeError(f"lane {v.target_lane_index} left the lane table")
                drivers.append(v)
            elif kind is not Vehicle:  # Vehicle.act() without an action keeps its action
                v.act()
        if drivers:
            self._drive(drivers)

    def _drive(self, drivers: list[IDMVehicle]) -> None:
        """Set every driver's ``action`` as ``IDMVehicle.act`` would after its decisions."""
        by_index = self.table.by_index
        index = self._neighbour_index()
        xy = np.array([v.position for v in drivers])
        heading = np.array([v.heading for v in drivers], dtype=float)
        speed = np.array([v.speed for v in drivers], dtype=float)
        lanes = [by_index[v.lane_index] for v in drivers]
        targets = [by_index[v.target_lane_index] for v in drivers]
        steer = idm.steering(
            xy[:, 1] - np.array([t.y0 for t in targets]),
            np.array([t.heading for t in targets]),
            heading,
            speed,
        )

        target_speed = np.array([v.target_speed for v in drivers], dtype=float)
        limits = [v.lane.speed_limit if v.lane else None for v in drivers]
        limited = np.array([limit is not None for limit in limits])
        limit = np.array([np.inf if lim is None else lim for lim in limits], dtype=float)
        target_speed = np.where(limited, np.clip(target_speed, 0, limit), target_speed)
        free = idm.free_road_acceleration(
            speed, target_speed, np.array([v.DELTA for v in drivers], dtype=float)
        )

        rows, fronts, in_target = [], [], []
        changing = np.zeros(len(drivers), dtype=bool)
        for k, v in enumerate(drivers):
            front, _ = index.neighbours(v, lanes[k])
            if front is not None:
                rows.append(k), fronts.append(front), in_target.append(False)
            if v.lane_index != v.target_lane_index:
                changing[k] = True
                front, _ = index.neighbours(v, targets[k])
                if front is not None:
                    rows.append(k), fronts.append(front), in_target.append(True)
        current, target = free.copy(), free.copy()
        if rows:
            rows_a = np.array(rows)
            x0 = np.array([lanes[k].x0 for k in rows])
            gap = (np.array([f.position[0] for f in fronts]) - x0) - (xy[rows_a, 0] - x0)
            braking = idm.interaction_acceleration(
                gap,
                speed[rows_a],
                heading[rows_a],
                np.array([f.speed for f in fronts], dtype=float),
                np.array([f.heading for f in fronts], dtype=float),
            )
            in_target_a = np.array(in_target)
            cur_rows = rows_a[~in_target_a]
            current[cur_rows] = free[cur_rows] - braking[~in_target_a]
            tgt_rows = rows_a[in_target_a]
            target[tgt_rows] = free[tgt_rows] - braking[in_target_a]
        accel = np.where(changing & (target < current), target, current)
        accel = np.clip(accel, -IDMVehicle.ACC_MAX, IDMVehicle.ACC_MAX)
        for v, s, a in zip(drivers, steer.tolist(), accel.tolist(), strict=True):
            v.action = {"steering": s, "acceleration": a}

    # -- dynamics ------------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        if not self.vectorised:
            super().step(dt)
            self._epoch += 1
            return
        movers = []
        for v in self._vehicles:
            kind = type(v)
            if kind is IDMVehicle:
                v.timer += dt
                movers.append(v)
            elif kind is Vehicle:
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

        beta = np.arctan(1 / 2 * np.tan(steer))
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
        lanes = self.table.closest(x, y, heading)
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
        """``Road.step``'s collision loop, skipping pairs too far apart to touch."""
        n = len(self._vehicles)
        things = [*self._vehicles, *self._objects]
        if n == 0 or len(things) < 2:
            return
        xy = np.array([t.position for t in things])
        diagonal = np.array([t.diagonal for t in things], dtype=float)
        travel = np.maximum(np.array([v.speed for v in self._vehicles], dtype=float) * dt, 0)
        reach = (diagonal[:n, None] + diagonal[None, :]) / 2 + travel[:, None]
        reach += _BROAD_PHASE_SLACK_M
        offset = xy[None, :, :] - xy[:n, None, :]
        close = np.einsum("ijk,ijk->ij", offset, offset) <= reach * reach
        close &= np.arange(len(things))[None, :] > np.arange(n)[:, None]
        for i, j in zip(*np.nonzero(close), strict=True):
            things[i].handle_collisions(things[j], dt)
