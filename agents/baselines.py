"""Baseline agents: the floor (``random``, ``keep-lane``) and highway-env's own driver (``idm``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import Agent


class RandomAgent(Agent):
    """Uniform random actions in [-1, 1], reproducible per episode seed."""

    name = "random"

    def __init__(self, scenario) -> None:
        super().__init__(scenario)
        self._rngs: dict[int, np.random.Generator] = {}

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        self._rngs[slot] = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, info: dict[str, Any], slot: int = 0) -> np.ndarray:
        rng = self._rngs.setdefault(slot, np.random.default_rng())
        return rng.uniform(-1.0, 1.0, self.action_size).astype(np.float32)


class IdmAgent(Agent):
    """highway-env's IDM (acceleration) + MOBIL (lane changes) driver in the ego car's place.

    Privileged: it reads ``info["idm_action"]``, which the environment computes with a shadow
    IDM vehicle (see :mod:`envs.idm_hint`). In steer-only scenarios it passes on the steering.
    """

    name = "idm"
    privileged = True
    uses_idm_hint = True

    def act(self, obs: np.ndarray, info: dict[str, Any], slot: int = 0) -> np.ndarray:
        if "idm_action" not in info:
            raise RuntimeError("the idm agent needs an environment built with idm_hint=True")
        action = np.asarray(info["idm_action"], dtype=np.float32)
        return action if self.scenario.action.mode == "accel_steer" else action[1:]

    def explain(self, slot: int = 0) -> dict[str, Any]:
        return {"driver": "highway-env IDMVehicle (IDM + MOBIL)"}
