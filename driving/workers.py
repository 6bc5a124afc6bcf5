"""The environment workers behind the rollout loop, and what happens when one fails.

Environments run in gymnasium vector envs: in-process (one worker) or one subprocess each
(:class:`gymnasium.vector.AsyncVectorEnv`), autoreset off so that the loop resets each
environment with the seed it chooses. Every call into a vector env goes through
:func:`guarded`, the one place where an exception from a worker (a crash, a kill, an error in
the simulator) becomes a :class:`WorkerFailure` naming the episodes it cost.

Agents that decide from ``obs`` and ``info`` alone (``Agent.decides_in_worker``: the oracles,
modular-vision, the baselines) can decide inside the workers (:class:`DecidingEnv`), so a step
sends back their actions and the per-step metrics instead of the whole ground-truth scene
(issue 19); observations come back through shared memory.

Workers ignore SIGINT: a Ctrl-C reaches the whole process group, and the main process alone
decides what stops (it terminates its workers on the way out), so no worker prints a traceback.

Scripts that use more than one worker need an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import functools
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

import gymnasium
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.vector.async_vector_env import _async_worker

import envs
from agents.base import Agent
from envs.scenarios import Scenario

T = TypeVar("T")


class WorkerFailure(RuntimeError):
    """An environment worker died or raised in the middle of episodes.

    Attributes:
        failed: seed -> reason, for the episodes whose worker failed.
        interrupted: seeds of the other episodes that were running (lost with the vector env;
            being seeded, they can be run again from the start with the same outcome).
    """

    def __init__(self, failed: dict[int, str], interrupted: list[int]) -> None:
        seeds = ", ".join(f"{seed} ({reason})" for seed, reason in failed.items())
        super().__init__(
            f"environment worker failed on seed {seeds}"
            if failed
            else "an idle environment worker failed; no episode was lost"
        )
        self.failed = failed
        self.interrupted = interrupted


@dataclass
class Decision:
    """One agent's decision taken inside a worker (:class:`DecidingEnv`).

    Attributes:
        action: ``(A,)`` float32, the agent's normalised action.
        latency_ms: the decision's time [ms].
        explanation: the agent's ``explain()`` when asked for, else empty.
    """

    action: np.ndarray
    latency_ms: float
    explanation: dict[str, Any] = field(default_factory=dict)


class DecidingEnv(gymnasium.Wrapper):
    """An environment whose agents decide in its own process.

    After every reset and step, each agent of ``agents`` (role -> agent, e.g. ``"expert"``)
    decides on the new observation; ``info["decisions"][role]`` holds its :class:`Decision`.
    The ground truth the main process no longer needs (``info["scene"]``,
    ``info["idm_action"]``) is dropped unless ``keep_scene``.

    Args:
        env: the environment (a :class:`~envs.DrivingEnv`).
        agents: the agents deciding here, each a copy of the main process's (slot 0 here).
        explain: record each decision's ``explain()``.
        keep_scene: keep the ground-truth scene in ``info`` (something in the main process
            reads it).
    """

    def __init__(
        self, env: gymnasium.Env, agents: Mapping[str, Agent], explain: bool, keep_scene: bool
    ) -> None:
        super().__init__(env)
        self.agents = dict(agents)
        for agent in self.agents.values():  # a forked worker: one thread, as DataLoader workers
            agent.limit_threads(1)
        self.explain = explain
        self.keep_scene = keep_scene

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        for agent in self.agents.values():
            agent.reset(seed, 0)
        return obs, self._decide(obs, info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._decide(obs, info)

    def _decide(self, obs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        decisions = {}
        for role, agent in self.agents.items():
            started = time.perf_counter()
            action = np.asarray(agent.act(obs, info, 0), dtype=np.float32)
            latency = (time.perf_counter() - started) * 1000.0
            decisions[role] = Decision(action, latency, agent.explain(0) if self.explain else {})
        if not self.keep_scene:
            info = {k: v for k, v in info.items() if k not in ("scene", "idm_action")}
        return {**info, "decisions": decisions}


def make_vector_env(
    scenario: Scenario,
    n: int,
    *,
    in_process: bool,
    render_mode: str | None = None,
    fast: bool | None = None,
    idm_hint: bool = True,
    deciding: Mapping[str, Agent] | None = None,
    explain: bool = False,
    keep_scene: bool = True,
) -> gymnasium.vector.VectorEnv:
    """``n`` environments of ``scenario``, in-process or one subprocess each, autoreset off.

    With ``deciding`` (role -> agent) or without ``keep_scene``, each environment is a
    :class:`DecidingEnv` with its own copy of those agents (``explain``, ``keep_scene`` as
    there). Subprocesses return their observations through shared memory.
    """
    make = functools.partial(
        _make_env,
        scenario,
        render_mode=render_mode,
        fast=fast,
        idm_hint=idm_hint,
        deciding=dict(deciding or {}),
        explain=explain,
        keep_scene=keep_scene,
    )
    fns = [make] * n
    if in_process:
        return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED, copy=False)
    return AsyncVectorEnv(
        fns,
        autoreset_mode=AutoresetMode.DISABLED,
        copy=False,
        shared_memory=True,
        worker=_quiet_worker,
    )


def _make_env(
    scenario: Scenario,
    *,
    render_mode: str | None,
    fast: bool | None,
    idm_hint: bool,
    deciding: dict[str, Agent],
    explain: bool,
    keep_scene: bool,
) -> gymnasium.Env:
    env = envs.make(scenario, render_mode=render_mode, fast=fast, idm_hint=idm_hint)
    return env if keep_scene and not deciding else DecidingEnv(env, deciding, explain, keep_scene)


def _quiet_worker(*args: Any) -> None:
    """gymnasium's worker loop with SIGINT ignored and SIGTERM at its default (a forked worker
    inherits the parent's handlers): stopping is the parent's call, see the module docstring."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _async_worker(*args)


def unbatch_info(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Split a vector env's batched ``info`` into ``n`` per-environment dicts.

    Keys missing for an environment (its ``_key`` mask is False) are left out of its dict.
    """
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}", np.ones(n, dtype=bool))
        parts = unbatch_info(value, n) if isinstance(value, dict) else None
        for i in range(n):
            if mask[i]:
                out[i][key] = parts[i] if parts is not None else value[i]
    return out


def guarded(
    vec: gymnasium.vector.VectorEnv, seeds: Sequence[int | None], call: Callable[[], T]
) -> T:
    """``call()``, a call into ``vec`` while slot ``i`` runs episode ``seeds[i]`` (None: idle);
    any exception becomes the :class:`WorkerFailure` naming the failed and interrupted seeds."""
    try:
        return call()
    except Exception as exc:
        raise _failure(vec, seeds, exc) from exc


def close_vector_env(vec: gymnasium.vector.VectorEnv, broken: bool) -> None:
    """Close a vector env; after a failure, terminate and reap its workers instead."""
    if not broken or not isinstance(vec, AsyncVectorEnv):
        vec.close()
        return
    for process in vec.processes:
        stop_process(process, terminate=True, wait_s=2.0)
    for pipe in vec.parent_pipes:
        if pipe is not None:
            pipe.close()
    vec.closed = True  # nothing left for gymnasium's own close() to talk to


def stop_process(process: BaseProcess, terminate: bool, wait_s: float) -> None:
    """Reap a worker process: SIGTERM first when ``terminate``, then wait ``wait_s`` seconds
    and SIGKILL it if it is still alive."""
    if terminate and process.is_alive():
        process.terminate()
    process.join(timeout=wait_s)
    if process.is_alive():
        process.kill()
        process.join()


def _failure(
    vec: gymnasium.vector.VectorEnv, seeds: Sequence[int | None], exc: BaseException
) -> WorkerFailure:
    active = [slot for slot, seed in enumerate(seeds) if seed is not None]
    failed_slots = _failed_slots(vec, active)
    failed = {int(seeds[s]): _describe_exit(vec, s, exc) for s in failed_slots}
    interrupted = [int(seeds[s]) for s in active if s not in failed_slots]
    return WorkerFailure(failed, interrupted)


def _failed_slots(vec: gymnasium.vector.VectorEnv, active: list[int]) -> list[int]:
    """The running slots whose worker died or reported an error.

    In-process, every running slot is suspect. With subprocesses, a dead worker whose slot had
    no running episode (it had finished) costs no episode: the others are only interrupted.
    When no worker is found dead, every running slot is suspect.
    """
    if not isinstance(vec, AsyncVectorEnv):
        return list(active)
    dead = []
    for slot, process in enumerate(vec.processes):
        process.join(timeout=1.0)  # a worker that raised exits right after reporting it
        if vec.parent_pipes[slot] is None or process.exitcode is not None:
            dead.append(slot)
    return [s for s in dead if s in active] if dead else list(active)


def _describe_exit(vec: gymnasium.vector.VectorEnv, slot: int, exc: BaseException) -> str:
    if isinstance(vec, AsyncVectorEnv):
        code = vec.processes[slot].exitcode
        if code is not None and code < 0:
            return f"worker killed by signal {-code}"
        if code is not None and code != 0:
            return f"worker exited with status {code}"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def is_in_process(vec: gymnasium.vector.VectorEnv) -> bool:
    """Whether ``vec``'s environments live in this process (they can be rendered here)."""
    return isinstance(vec, SyncVectorEnv)
