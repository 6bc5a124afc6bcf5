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


ROUTE_SETTINGS: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    # the ring's 20-24 m radius and the exits' reverse curves: slow for the curves, keep the
    # lane the route follows (no lane changes on the ring), give way to the ring's traffic,
    # and a short look-ahead so that pure pursuit does not cut from the ring into the exit
    # across the unpaved corner between them; priority to the ring (give way to the left only)
    "roundabout": (
        {
            "lane_changes": False,
            "curve_lateral_accel": 3.5,
            "yield_gap": 1.0,
            "yield_left_only": True,
        },
        {"lookahead_time": 0.3, "lookahead_min": 4.0, "max_lateral_accel": 8.0},
    ),
    # the exit is on the right, beyond five lanes of ever slower traffic: change right
    # whenever safe, slowing for a gap where not, and a sharper lane change (6 m/s²) so that
    # the six of them fit before the exit; the exit's 150 m radius needs no curve speed
    "exit": (
        {"exit_right": True, "exit_urgency_distance": 250.0, "urgent_headway": 0.15},
        {"max_lateral_accel": 6.0},
    ),
}
"""Planner settings and controller gains that scenarios with a route
(:class:`envs.scenarios.Route`) override, by scenario name."""


ORACLE_ROUTE_SETTINGS: dict[str, dict[str, object]] = {
    # half the roundabout's time gap [s] to the ring's cars: the ground truth's positions and
    # predictions need less margin, and with the full gap the oracle stopped for gaps it
    # fitted in, at the entry and again on the ring, and ran out of time (roundabout
    # validation seed 100241); vision keeps the full gap for its noisier tracks
    "roundabout": {"yield_gap": 0.5},
}
"""Planner settings that only the oracle (``modular-oracle``) overrides on top of
:data:`ROUTE_SETTINGS`, by scenario name."""


def settings_for(scenario: Scenario, vision: bool = False) -> tuple[PlannerConfig, ControlGains]:
    """Planner settings and controller gains for ``scenario`` (``vision``: for modular-vision).

    Steer-only scenarios (racetrack) drive at the environment's cruise speed, so slower cars
    ahead can only be passed (``can_brake=False``: the planner dodges them); the oracle reads
    the other cars in each lane's frame (``lane_frame``), starts a dodge 5 s before it would
    reach a car, so that it has passed a car in the other lane before it reaches the one ahead,
    and makes no other lane change (``dodge_only``). Vision keeps the straight-line reading, 3 s
    and MOBIL's changes: with its noisier lanes the oracle's settings ran it off the curves
    more often (racetrack validation seed 100004). Both get a shorter look-ahead and a higher
    lateral-acceleration cap for the tight curves. Scenarios with a route take
    :data:`ROUTE_SETTINGS`, and the oracle :data:`ORACLE_ROUTE_SETTINGS` on top of them.
    """
    planner, gains = PlannerConfig(), ControlGains()
    if vision:
        gains = replace(gains, **VISION_LOOKAHEAD)
    if scenario.action.mode == "steer":
        planner = replace(planner, cruise_speed=scenario.action.cruise_speed, can_brake=False)
        if not vision:
            planner = replace(planner, lane_frame=True, evade_time=5.0, dodge_only=True)
        gains = replace(gains, max_lateral_accel=12.0, lookahead_time=0.3, lookahead_min=3.0)
    if scenario.name in ROUTE_SETTINGS:
        planner_changes, gain_changes = ROUTE_SETTINGS[scenario.name]
        planner = replace(planner, **planner_changes)
        gains = replace(gains, **gain_changes)
    if not vision and scenario.name in ORACLE_ROUTE_SETTINGS:
        planner = replace(planner, **ORACLE_ROUTE_SETTINGS[scenario.name])
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
