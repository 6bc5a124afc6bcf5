"""The modular agent: perception -> planning -> control.

``modular-oracle`` perceives the ground truth ``info["scene"]`` (privileged; the expert that labels
demonstrations); ``modular-vision`` perceives the same pixels the CNN sees with OpenCV. Both share
the planner (:mod:`agents.modular.planning`) and controller (:mod:`agents.modular.control`).
"""

from __future__ import annotations

from dataclasses import replace

from agents.modular.agent import ModularAgent
from agents.modular.control import ControlGains
from agents.modular.perception import OraclePerception
from agents.modular.planning import PlannerConfig
from envs.errors import UserError
from envs.scenarios import Scenario

__all__ = ["ModularAgent", "make_oracle_agent", "make_vision_agent", "settings_for"]


VISION_LOOKAHEAD = {"lookahead_time": 1.0, "lookahead_min": 10.0}
"""Longer pure-pursuit look-ahead for vision: its heading estimate is quantised by the pixels
(1 px = 0.33 m of lateral drift), and a longer look-ahead damps the steering noise this causes
(highway, 10 validation episodes: steering jerk 0.36 -> 0.22 rad/s², lane offset 0.15 -> 0.16
m)."""


def settings_for(scenario: Scenario, vision: bool = False) -> tuple[PlannerConfig, ControlGains]:
    """Planner settings and controller gains for ``scenario`` (``vision``: for modular-vision).

    Steer-only scenarios (racetrack) drive at the environment's cruise speed, so slower cars
    ahead can only be passed (``can_brake=False``: the planner dodges them); they get a shorter
    look-ahead and a higher lateral-acceleration cap for the tight curves.
    """
    planner, gains = PlannerConfig(), ControlGains()
    if vision:
        gains = replace(gains, **VISION_LOOKAHEAD)
    if scenario.action.mode == "steer":
        planner = replace(planner, cruise_speed=scenario.action.cruise_speed, can_brake=False)
        gains = replace(gains, max_lateral_accel=12.0, lookahead_time=0.3, lookahead_min=3.0)
    return planner, gains


LABELLERS = {
    "memoryless": "re-plans from each frame alone (no lane change under way, no cooldown)",
    "nearest-lane": "re-plans from each frame and never starts a lane change: it steers to the "
    "centre of the nearest lane and follows that lane's leader",
}
"""Arguments of ``modular-oracle:ARG``: oracles for labelling states another driver reached
(DAgger), whose action depends on the current frame only (:class:`ModularAgent`'s
``memoryless``)."""


def make_oracle_agent(scenario: Scenario, arg: str | None = None) -> ModularAgent:
    """The modular agent on ground-truth perception (``modular-oracle``), or one of its
    :data:`LABELLERS` (``modular-oracle:memoryless``, ``modular-oracle:nearest-lane``)."""
    if arg not in (None, "", *LABELLERS):
        raise UserError(
            f"agent 'modular-oracle' takes no argument or one of {sorted(LABELLERS)}, got {arg!r}"
        )
    planner, gains = settings_for(scenario)
    if arg == "nearest-lane":
        planner = replace(planner, lane_changes=False)
    return ModularAgent(
        scenario,
        OraclePerception,
        planner,
        gains,
        name="modular-oracle",
        memoryless=bool(arg),
    )


def make_vision_agent(scenario: Scenario, arg: str | None = None) -> ModularAgent:
    """The modular agent on OpenCV perception of the pixels (``modular-vision``), or with one
    perception output from the ground truth (``modular-vision:oracle-lanes``,
    ``modular-vision:oracle-vehicles``; :mod:`agents.modular.hybrid`)."""
    from agents.modular.hybrid import TRUTHS, HybridPerception
    from agents.modular.vision import VisionPerception

    if arg not in (None, "", *TRUTHS):
        raise UserError(
            f"agent 'modular-vision' takes no argument or one of {sorted(TRUTHS)}, got {arg!r}"
        )
    VisionPerception.check_supported(scenario)
    planner, gains = settings_for(scenario, vision=True)

    def factory() -> VisionPerception | HybridPerception:
        return HybridPerception(scenario, arg) if arg else VisionPerception(scenario)

    return ModularAgent(scenario, factory, planner, gains, name="modular-vision")
