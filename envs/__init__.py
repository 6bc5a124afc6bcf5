"""Driving scenarios on highway-env as gymnasium environments.

``envs.make("highway", overrides={...})`` builds a :class:`DrivingEnv`; every scenario is also
registered with gymnasium as ``driving/<CamelName>-v0`` (e.g. ``gymnasium.make(
"driving/Highway-v0")``, ``"driving/HighwayDense-v0"``). This package imports neither torch nor
anything above it.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

# SDL (pygame) complains on every exit when XDG_RUNTIME_DIR is unset, as on headless servers.
if not os.environ.get("XDG_RUNTIME_DIR"):
    _runtime = os.path.join(tempfile.gettempdir(), f"runtime-{os.getuid()}")
    os.makedirs(_runtime, mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = _runtime
# SDL turns SIGINT and SIGTERM into quit events that no one here reads, so a process that has
# rendered once ignored ``kill``; the signals keep their Python meaning instead.
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")

import gymnasium

from envs.driving_env import DrivingEnv
from envs.errors import UserError
from envs.scenarios import SCENARIOS, Scenario, SeedRange, get_scenario
from envs.scene import LaneGeometry, Scene, VehicleState
from envs.spec import ActionSpec, ObservationSpec

__all__ = [
    "SCENARIOS",
    "ActionSpec",
    "DrivingEnv",
    "LaneGeometry",
    "ObservationSpec",
    "Scenario",
    "Scene",
    "SeedRange",
    "UserError",
    "VehicleState",
    "get_scenario",
    "gym_id",
    "make",
]


def gym_id(name: str) -> str:
    """The gymnasium id of a scenario: ``"highway-dense"`` -> ``"driving/HighwayDense-v0"``."""
    return "driving/" + "".join(part.capitalize() for part in name.split("-")) + "-v0"


def make(
    scenario: str | Scenario = "highway",
    overrides: dict[str, Any] | None = None,
    render_mode: str | None = None,
    fast: bool | None = None,
    idm_hint: bool = True,
) -> DrivingEnv:
    """Build the environment of a scenario (see :class:`DrivingEnv` for the arguments)."""
    return DrivingEnv(scenario, overrides, render_mode=render_mode, fast=fast, idm_hint=idm_hint)


for _name in SCENARIOS:
    if gym_id(_name) not in gymnasium.registry:
        gymnasium.register(
            gym_id(_name), entry_point="envs.driving_env:DrivingEnv", kwargs={"scenario": _name}
        )
