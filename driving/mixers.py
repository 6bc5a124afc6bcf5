"""Action mixers: what is executed when the acting agent's action is not simply taken.

A mixer is called by the rollout loop at every decision with ``(seed, step, agent_action,
expert_action)`` and returns the executed action (the loop clips it to [-1, 1]). It must draw
its randomness from ``(seed, step)`` only, so that episodes stay reproducible whatever the
number of workers. The expert's clean action stays the label either way.

- :class:`DartNoise`: Gaussian noise on the executed action (DART, Laskey et al. 2017, "DART:
  Noise Injection for Robust Imitation Learning"): the car visits the states just off the
  expert's path, and the expert labels the way back.
- :class:`BetaMixture`: DAgger's mixture policy (Ross, Gordon and Bagnell 2011): the expert's
  action with probability ``beta``, the policy's otherwise, optionally with DART noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.errors import UserError
from envs.spec import ActionSpec

ActionMixer = Callable[[int, int, np.ndarray, np.ndarray | None], np.ndarray]
"""``(seed, step, agent_action (A,), expert_action (A,) or None) -> executed action (A,)``."""

_NOISE_SALT = 0xDA27
"""Mixed into the noise seed so the noise stream is unrelated to the simulator's own."""
_BETA_SALT = 0xBE7A
"""Mixed into the expert/policy coin's seed so it is unrelated to the simulator's stream."""


@dataclass(frozen=True)
class DartNoise:
    """Gaussian noise added to the executed action, drawn from ``(seed, step)``.

    Args:
        names: the action components, e.g. ``("accel", "steer")``.
        std: standard deviation per component, in normalised action units.
    """

    names: tuple[str, ...]
    std: tuple[float, ...]

    def __call__(
        self, seed: int, step: int, agent_action: np.ndarray, expert_action: np.ndarray | None
    ) -> np.ndarray:
        """``agent_action (A,) + N(0, std²)``."""
        rng = np.random.default_rng([_NOISE_SALT, seed, step])
        noise = rng.standard_normal(len(self.std)) * np.asarray(self.std)
        return (agent_action + noise).astype(np.float32)

    @classmethod
    def from_settings(cls, action: ActionSpec, steer: float, accel: float) -> DartNoise | None:
        """The noise for ``action`` (None when both deviations are 0)."""
        if accel and "accel" not in action.names:
            raise UserError("--noise-accel does not apply: this scenario's action is steer-only")
        if not steer and not accel:
            return None
        std = {"steer": steer, "accel": accel}
        return cls(tuple(action.names), tuple(float(std[n]) for n in action.names))

    @classmethod
    def from_record(cls, action: ActionSpec, record: dict[str, Any] | None) -> DartNoise | None:
        """The noise that :meth:`to_dict` recorded (None: none)."""
        if record is None:
            return None
        std = record["std"]
        return cls(tuple(action.names), tuple(float(std[n]) for n in action.names))

    def describe(self) -> str:
        """``", steer noise 0.02"`` for progress bars (empty when every std is 0)."""
        stds = zip(self.names, self.std, strict=True)
        return "".join(f", {name} noise {std}" for name, std in stds if std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings recorded in manifests and provenance."""
        return {
            "kind": "dart-gaussian",
            "applied_to": "executed action; the label is the expert's clean action",
            "std": dict(zip(self.names, self.std, strict=True)),
            "random_stream": "numpy default_rng([0xDA27, episode seed, step])",
        }


@dataclass(frozen=True)
class BetaMixture:
    """DAgger's mixture policy: the expert's action with probability ``beta``.

    The coin is drawn from ``(round, seed, step)`` only. ``noise`` then perturbs the executed
    action (DART: the rollouts visit the states next to the ones the policy keeps to, such as a
    lane's edge, and the expert labels the way back).

    Args:
        beta: probability of executing the expert's action, in [0, 1].
        round: the DAgger round (salts the coin).
        noise: Gaussian noise added to the executed action (None: none).
    """

    beta: float
    round: int
    noise: DartNoise | None = None

    def __call__(
        self, seed: int, step: int, agent_action: np.ndarray, expert_action: np.ndarray | None
    ) -> np.ndarray:
        if expert_action is None:
            raise ValueError("DAgger's mixture needs the expert's action at every step")
        coin = np.random.default_rng([_BETA_SALT, self.round, seed, step]).random()
        executed = expert_action if coin < self.beta else agent_action
        return executed if self.noise is None else self.noise(seed, step, executed, expert_action)
