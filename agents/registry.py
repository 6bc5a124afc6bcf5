"""Agent specs: the strings users pass as ``--agent``.

===================================  ===============================================================
spec                                 agent
===================================  ===============================================================
``random``                           uniform random actions (seeded per episode)
``keep-lane``                        constant zero action: no steering, no acceleration
``idm``                              highway-env's IDM/MOBIL driver in the ego's place (privileged)
``modular-oracle``                   perception -> planning -> control on ground-truth perception
``modular-oracle:memoryless``        the same, re-planning from each frame alone (a DAgger labeller)
``modular-oracle:nearest-lane``      the same, never starting a lane change (a DAgger labeller)
``modular-vision``                   the same pipeline with OpenCV perception on the pixels
``modular-vision:oracle-lanes``      the same with ground-truth lanes (which stage costs what)
``modular-vision:oracle-vehicles``   the same with ground-truth vehicles
``cnn:PATH``                         the behaviour-cloned network of checkpoint ``PATH``
===================================  ===============================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.base import Agent, ConstantAgent
from agents.baselines import IdmAgent, RandomAgent
from envs.errors import UserError, unknown_choice
from envs.scenarios import Scenario


def _lazy(module: str, function: str) -> Callable[[Scenario, str | None], Agent]:
    def build(scenario: Scenario, arg: str | None) -> Agent:
        try:
            factory = getattr(importlib.import_module(module), function)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(module.split(".")[0]):
                raise UserError(f"agent {module} is not yet available") from None
            raise
        return factory(scenario, arg)

    return build


def _no_arg(cls: type[Agent]) -> Callable[[Scenario, str | None], Agent]:
    def build(scenario: Scenario, arg: str | None) -> Agent:
        if arg:
            raise UserError(f"agent {cls.name!r} takes no argument, got {arg!r}")
        return cls(scenario)

    return build


AGENTS: dict[str, Callable[[Scenario, str | None], Agent]] = {
    "random": _no_arg(RandomAgent),
    "keep-lane": _no_arg(ConstantAgent),
    "idm": _no_arg(IdmAgent),
    "modular-oracle": _lazy("agents.modular", "make_oracle_agent"),
    "modular-vision": _lazy("agents.modular", "make_vision_agent"),
    "cnn": _lazy("agents.cnn_agent", "make_cnn_agent"),
}
"""Agent factories by spec name; each takes the scenario and the text after ``:`` (or None)."""


@dataclass(frozen=True)
class AgentSpec:
    """A parsed agent spec: ``name`` or ``name:arg`` (e.g. ``cnn:runs/bc/best.ckpt``)."""

    name: str
    arg: str | None = None

    @classmethod
    def parse(cls, text: str | AgentSpec) -> AgentSpec:
        """Parse and check a spec string (a :class:`UserError` for an unknown agent)."""
        if isinstance(text, AgentSpec):
            return text
        if not isinstance(text, str) or not text.strip():
            raise UserError("agent spec must be a non-empty string, e.g. 'idm' or 'cnn:model.ckpt'")
        name, sep, arg = text.strip().partition(":")
        if name not in AGENTS:
            raise unknown_choice("agent", name, [*AGENTS, "cnn:PATH"])
        if name == "cnn" and not arg:
            raise UserError("agent 'cnn' needs a checkpoint: cnn:PATH")
        return cls(name, arg if sep else None)

    @property
    def checkpoint(self) -> Path | None:
        """The checkpoint file of a ``cnn:PATH`` spec (None for other agents)."""
        return Path(self.arg) if self.name == "cnn" and self.arg else None

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg}"


def make_agent(spec: str | AgentSpec, scenario: Scenario) -> Agent:
    """Build the agent named by ``spec`` (``name`` or ``name:arg``) for ``scenario``."""
    parsed = AgentSpec.parse(spec)
    agent = AGENTS[parsed.name](scenario, parsed.arg)
    agent.name = str(parsed)
    return agent
