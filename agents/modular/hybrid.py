"""modular-vision with one perception output replaced by the ground truth.

Which stage costs what (issue 21's debuggability and domain-knowledge columns): the modular
pipeline's failures are attributed to a stage by driving the same seeds with that stage's output
replaced by ground truth and seeing which failures go away. Two outputs can be swapped:

- ``oracle-lanes``: the lanes, the ego lane, the road heading and the speed limit come from
  ``info["scene"]``; the vehicles are still detected and tracked in the pixels;
- ``oracle-vehicles``: the vehicles come from ``info["scene"]``; the lanes are still found in
  the pixels.

Both read the ground truth, so they are privileged. The swapped output is expressed in the true
ego frame while the rest is in the one vision estimated (the two differ by vision's heading
error, a fraction of a degree on a straight road); this is what the planner would get from a
perfect stage beside an imperfect one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np

from agents.modular.perception import OraclePerception, Percept
from envs.scenarios import Scenario

Truth = Literal["oracle-lanes", "oracle-vehicles"]
"""Which output comes from the ground truth."""
TRUTHS: dict[str, str] = {
    "oracle-lanes": "vision perception with ground-truth lanes (vehicles still from the pixels)",
    "oracle-vehicles": "vision perception with ground-truth vehicles (lanes still from the pixels)",
}
"""The arguments of ``modular-vision:ARG`` and what each swaps."""


class HybridPerception:
    """Vision perception with the output named by ``truth`` taken from the ground truth.

    Args:
        scenario: the scenario (for the vision stage).
        truth: ``"oracle-lanes"`` or ``"oracle-vehicles"``.
    """

    privileged = True

    def __init__(self, scenario: Scenario, truth: Truth) -> None:
        from agents.modular.vision import VisionPerception

        self.vision = VisionPerception(scenario)
        self.oracle = OraclePerception()
        self.truth = truth

    def reset(self) -> None:
        """Forget the vision stage's memory (tracks, boundary history)."""
        self.vision.reset()
        self.oracle.reset()

    def perceive(self, obs: np.ndarray, info: dict[str, Any]) -> Percept:
        """Vision's percept of ``obs`` with the swapped output from ``info["scene"]``."""
        seen = self.vision.perceive(obs, info)
        true = self.oracle.perceive(obs, info)
        if self.truth == "oracle-vehicles":
            return replace(seen, detections=true.detections)
        return replace(
            seen,
            lanes=true.lanes,
            ego_lane=true.ego_lane,
            heading=true.heading,
            speed_limit=true.speed_limit,
        )
