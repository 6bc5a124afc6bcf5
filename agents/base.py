"""The Agent protocol: anything that drives.

An agent maps a pixel observation (and the ``info`` dict of the same step) to a normalised action
of its scenario's :class:`~envs.spec.ActionSpec`. Agents may keep state per episode (a vision
tracker, a lane-change plan); that state is kept per *slot*, one slot per environment of a
vectorised rollout, so one agent object can drive many environments at once and batch its
decisions (a network runs all slots in one forward pass on its device).

Contract (see ``shared/DESIGN.md``):

- :meth:`Agent.reset` ``(seed, slot)`` before each episode in that slot;
- :meth:`Agent.act` ``(obs, info, slot) -> action`` with ``obs`` ``(C, H, W)`` uint8 and
  ``action`` ``(A,)`` float32 in [-1, 1]; :meth:`Agent.act_batch` is the batched form over
  ``(B, C, H, W)`` observations;
- :meth:`Agent.explain` ``(slot) -> dict`` of the last step's intermediate outputs, for overlays
  and debugging;
- an agent reads the simulator only through ``info``; only agents with ``privileged = True``
  (oracles, the ``idm`` baseline) read ``info["scene"]`` or ``info["idm_action"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from envs.scenarios import Scenario


class Agent:
    """Base class of every agent; subclasses implement :meth:`act` or :meth:`act_batch`.

    Args:
        scenario: the scenario it drives (for its action spec and decision period).

    Attributes:
        name: the agent spec it was built from, e.g. ``"modular-oracle"``.
        privileged: whether it reads ground truth from ``info`` (oracles).
        uses_idm_hint: whether it reads ``info["idm_action"]`` (the env then computes it).
        decides_in_worker: whether a copy of it can decide inside an environment worker process
            (it reads only ``obs`` and ``info`` and holds no device), so that a step sends back
            its action instead of the whole scene (issue 19). False for a network on a GPU,
            which decides for all environments at once in the main process.
    """

    name: str = "agent"
    privileged: bool = False
    uses_idm_hint: bool = False
    decides_in_worker: bool = True

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.action_size = scenario.action.size

    def reset(self, seed: int | None = None, slot: int = 0) -> None:
        """Start a new episode in ``slot`` (stateless agents need not override this)."""

    def act(self, obs: np.ndarray, info: dict[str, Any], slot: int = 0) -> np.ndarray:
        """One decision: ``obs`` ``(C, H, W)`` uint8 -> action ``(A,)`` float32 in [-1, 1]."""
        return self.act_batch(obs[None], [info], [slot])[0]

    def act_batch(
        self, obs: np.ndarray, infos: Sequence[dict[str, Any]], slots: Sequence[int]
    ) -> np.ndarray:
        """Decisions for several slots: ``obs`` ``(B, C, H, W)`` -> actions ``(B, A)``.

        The default loops over :meth:`act`; agents with a network override this to run one
        batched forward pass.
        """
        if type(self).act is Agent.act:
            raise NotImplementedError(f"{type(self).__name__} must implement act or act_batch")
        out = np.empty((len(slots), self.action_size), dtype=np.float32)
        for i, slot in enumerate(slots):
            out[i] = self.act(obs[i], infos[i], slot)
        return out

    def explain(self, slot: int = 0) -> dict[str, Any]:
        """Intermediate outputs of the last decision in ``slot`` (empty if none)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (spec and settings) to record with results."""
        return {"agent": self.name}

    @property
    def parameters(self) -> int:
        """Number of learned parameters (0 for hand-written agents)."""
        return 0

    def limit_threads(self, threads: int) -> int | None:
        """Decide with at most ``threads`` CPU threads; return the previous limit to restore
        (None: the agent has no such setting). The rollout calls it so that a network's
        inference does not fight the environment workers for the cores."""
        return None

    def close(self) -> None:
        """Release resources (windows, devices); the default holds none."""


class ConstantAgent(Agent):
    """Always the same action: ``keep-lane`` drives straight at the initial speed.

    Args:
        scenario: the scenario it drives.
        action: ``(A,)`` the constant normalised action (default all zeros).
    """

    name = "keep-lane"

    def __init__(self, scenario: Scenario, action: Sequence[float] | None = None) -> None:
        super().__init__(scenario)
        value = np.zeros(self.action_size) if action is None else np.asarray(action, float)
        if value.shape != (self.action_size,):
            raise ValueError(f"constant action must have {self.action_size} components")
        self.action = value.astype(np.float32).clip(-1, 1)

    def act(self, obs: np.ndarray, info: dict[str, Any], slot: int = 0) -> np.ndarray:
        return self.action.copy()
