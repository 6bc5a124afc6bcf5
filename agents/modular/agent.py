"""The modular agent: perception -> planning -> control, every stage inspectable.

One :class:`ModularAgent` drives many slots (environments) at once; each slot keeps its own
perception state (vision keeps a little memory) and planner state (the lane change under way).
:meth:`ModularAgent.explain` returns the last step's intermediate outputs of a slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from agents.base import Agent
from agents.modular.control import ControlGains, Controller
from agents.modular.perception import Percept
from agents.modular.planning import Planner, PlannerConfig, PlannerState
from envs.scenarios import Scenario


class Perception(Protocol):
    """What a perception stage offers the agent (one instance per slot).

    Attributes:
        privileged: whether it reads the ground truth ``info["scene"]``.
    """

    privileged: bool

    def reset(self) -> None:
        """Forget the previous episode."""

    def perceive(self, obs: np.ndarray, info: dict[str, Any]) -> Percept:
        """The percept of one step from ``obs`` ``(C, H, W)`` uint8 (and, for oracles, info)."""


class ModularAgent(Agent):
    """Perception -> MOBIL/IDM planning -> pure-pursuit control.

    :meth:`explain` keys: ``detections`` (dicts of :class:`~agents.modular.perception.Detection`,
    ego frame), ``decision``, ``target_speed`` [m/s], ``reference_path`` ``(K, 2)`` ego frame
    [m], ``controller`` (the controller's terms), ``lane`` / ``target_lane`` (lane ids),
    ``leader_gap`` [m], ``leader_speed`` [m/s], ``lateral_offset`` [m] from the lane centre,
    ``incentives`` (MOBIL gain per side [m/s²] when a change was considered) and ``heading``
    [rad] (ego heading relative to the observation's x axis).

    Args:
        scenario: the scenario it drives (action spec, decision period).
        perception_factory: builds one perception stage per slot (the agent is privileged when
            its perception is).
        planner_config: behaviour settings.
        gains: controller gains.
        name: the agent spec name.
        memoryless: forget the planner state (lane change under way, cooldown) before every
            step, so that the action depends on the current observation only. A DAgger labeller
            needs this: the network, not the labeller, drove the car into the state, and a
            labeller that remembers its own lane decision steers back to a lane the network
            left, a label the frame cannot explain.
    """

    def __init__(
        self,
        scenario: Scenario,
        perception_factory: Callable[[], Perception],
        planner_config: PlannerConfig,
        gains: ControlGains,
        *,
        name: str,
        memoryless: bool = False,
    ) -> None:
        super().__init__(scenario)
        self.name = name
        self.memoryless = memoryless
        self.perception_factory = perception_factory
        self.planner = Planner(planner_config, scenario.dt)
        self.controller = Controller(gains)
        self._perception: dict[int, Perception] = {}
        self._state: dict[int, PlannerState] = {}
        self._explained: dict[int, dict[str, Any]] = {}
        self._perception[0] = perception_factory()
        self.privileged = self._perception[0].privileged

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        perception = self._perception.get(slot)
        if perception is None:
            perception = self._perception[slot] = self.perception_factory()
        perception.reset()
        self._state[slot] = PlannerState()
        self._explained.pop(slot, None)

    def act(self, obs: np.ndarray, info: dict[str, Any], slot: int = 0) -> np.ndarray:
        if slot not in self._state:
            self.reset(None, slot)
        elif self.memoryless:
            self._state[slot] = PlannerState()
        percept = self._perception[slot].perceive(obs, info)
        plan = self.planner.plan(percept, self._state[slot])
        accel, steer, terms = self.controller.control(
            plan.reference_path, plan.accel, percept.ego_speed, plan.target_speed
        )
        self._explained[slot] = {
            "detections": [d.to_dict() for d in percept.detections],
            "decision": plan.decision,
            "target_speed": plan.target_speed,
            "reference_path": plan.reference_path,
            "controller": terms,
            "lane": plan.lane,
            "target_lane": plan.target_lane,
            "leader_gap": plan.leader_gap,
            "leader_speed": plan.leader_speed,
            "lateral_offset": plan.lateral_offset,
            "incentives": plan.incentives,
            "heading": percept.heading,
        }
        action = [accel, steer] if self.scenario.action.mode == "accel_steer" else [steer]
        return np.asarray(action, dtype=np.float32)

    def explain(self, slot: int = 0) -> dict[str, Any]:
        return dict(self._explained.get(slot, {}))

    def describe(self) -> dict[str, Any]:
        return {
            "agent": self.name,
            "memoryless": self.memoryless,
            "planner": vars(self.planner.config).copy(),
            "gains": self.controller.gains.to_dict(),
        }
