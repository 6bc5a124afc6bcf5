"""Accelerated simulation: the same highway-env traffic, an order of magnitude faster.

:func:`fast_env_class` derives from a highway-env env class a subclass whose road is a
:class:`~envs.fast.road.FastRoad` (vectorised neighbour search, IDM/MOBIL traffic, kinematics and
collision broad phase) and whose observation draws the lane markings with vectorised geometry
(:mod:`envs.fast.drawing`, same pixels: cached vehicle sprites, a per-colour grayscale table); on
roads other than highway-v0's straight ones the vehicles take their lane decisions with their own
methods and drive in one vectorised pass (see :mod:`envs.fast.road`). Vehicles, random draws,
rewards, observations and ``info`` are highway-env's own; only the loops over vehicles, lane
stripes and pixels change. Sameness with the stock simulation is tested in
``tests/test_fast_sim.py``.

:func:`is_supported` names the highway-env ids whose roads the fast path covers; others run
stock (``envs.driving_env.highway_env_class`` checks it).
"""

from __future__ import annotations

import functools

from envs.fast.drawing import use_fast_lane_viewer
from envs.fast.road import FastRoad

SUPPORTED_ENV_IDS = frozenset(
    {
        "highway-v0",
        "merge-v0",
        "racetrack-v0",
        "roundabout-v0",
        "roundabout-generic-v1",
        "exit-v0",
        "exit-v1",
    }
)
"""highway-env ids on a plain ``Road`` whose lanes are all straight, sine or circular lanes
(:mod:`envs.fast.geometry`). Not intersection-v0: its ``RegulatedRoad`` (right of way, yielding)
is a ``Road`` subclass that :class:`FastRoad` would replace."""


def is_supported(env_id: str) -> bool:
    """Whether the accelerated simulation covers ``env_id``."""
    return env_id in SUPPORTED_ENV_IDS


@functools.cache
def fast_env_class(base: type) -> type:
    """A subclass of the highway-env env class ``base`` that simulates on a :class:`FastRoad`."""

    def _reset(self) -> None:
        base._reset(self)
        self.road = FastRoad.adopt(self.road)

    def reset(self, **kwargs):
        result = base.reset(self, **kwargs)
        use_fast_lane_viewer(self.observation_type)  # rebuilt by every reset
        return result

    return type(
        f"Fast{base.__name__}",
        (base,),
        {"_reset": _reset, "reset": reset, "__doc__": base.__doc__},
    )
