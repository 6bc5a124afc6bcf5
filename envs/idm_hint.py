"""highway-env's own IDM/MOBIL driver, evaluated in the ego car's place.

The ``idm`` baseline drives the ego car the way highway-env drives every other car: IDM for the
acceleration, MOBIL for lane changes, highway-env's lane-following steering controller. A shadow
:class:`~highway_env.vehicle.behavior.IDMVehicle` mirrors the ego car's state each decision step;
its action is exposed in ``info["idm_action"]`` (normalised like the env's action), so the
baseline reaches the simulator only through ``info``, like every agent.
"""

from __future__ import annotations

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle

from envs.spec import ACCELERATION_RANGE_MPS2, STEERING_RANGE_RAD


class IdmShadow:
    """An IDM/MOBIL vehicle that follows the ego car's state and proposes an action.

    Args:
        env: the highway-env env (unwrapped) whose ego car is mirrored.
        decision_period: seconds between two calls of :meth:`action` (advances MOBIL's timer).
    """

    def __init__(self, env, decision_period: float) -> None:
        self.env = env
        self.decision_period = decision_period
        ego = env.vehicle
        self.vehicle = IDMVehicle(
            env.road, ego.position.copy(), ego.heading, ego.speed, target_lane_index=ego.lane_index
        )
        limit = env.road.network.get_lane(ego.lane_index).speed_limit
        self.vehicle.target_speed = float(limit) if limit else float(ego.speed)

    def action(self) -> np.ndarray:
        """The shadow's ``[accel, steer]`` for the current state, normalised to [-1, 1]."""
        ego, road, shadow = self.env.vehicle, self.env.road, self.vehicle
        shadow.position = ego.position.copy()
        shadow.heading, shadow.speed = ego.heading, ego.speed
        shadow.lane_index, shadow.lane = ego.lane_index, ego.lane
        if shadow.target_lane_index[:2] != ego.lane_index[:2]:
            shadow.target_lane_index = ego.lane_index  # the ego car left the planned road
        shadow.timer += self.decision_period
        # MOBIL and IDM look up neighbours in road.vehicles: stand in for the ego car there.
        i = road.vehicles.index(ego)
        road.vehicles[i] = shadow
        try:
            shadow.act()
        finally:
            road.vehicles[i] = ego
        accel = shadow.action.get("acceleration", 0.0)
        steer = shadow.action.get("steering", 0.0)
        return np.array(
            [accel / ACCELERATION_RANGE_MPS2[1], steer / STEERING_RANGE_RAD[1]], dtype=np.float32
        ).clip(-1.0, 1.0)
