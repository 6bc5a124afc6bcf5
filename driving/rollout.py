"""The one rollout loop: any agent, one or many environments, batched decisions.

Collection, evaluation, DAgger and watching all drive episodes through :func:`iter_episodes`.
Each episode is fully determined by its seed (the environment is reset with it and the agent's
slot is reset with it), so results do not depend on the number of workers or on which worker
ran which seed.

Environments run in gymnasium vector envs: in-process (``workers=1``) or one subprocess per
worker (``workers>1``, :class:`gymnasium.vector.AsyncVectorEnv`). Autoreset is disabled: when an
environment finishes, the loop resets just that one with the next seed. The agent decides for
all running environments in one :meth:`~agents.base.Agent.act_batch` call, so a network agent
runs one forward pass per step on its own device.

Scripts that use ``workers > 1`` need an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from tqdm.auto import tqdm

import envs
from agents.base import Agent
from envs.scenarios import Scenario

ActionMixer = Callable[[int, int, np.ndarray, np.ndarray | None], np.ndarray]
"""``(seed, step, agent_action (A,), expert_action (A,) or None) -> executed action (A,)``.

Decides the action actually executed, e.g. DART noise on the expert's action or DAgger's
beta-mixture of expert and policy. It must draw its randomness from ``(seed, step)`` only, so
episodes stay reproducible whatever the number of workers.
"""


@dataclass
class Episode:
    """One finished episode, step arrays aligned on decision steps ``t = 0..T-1``.

    Attributes:
        seed: the episode seed.
        steps: ``T``, the number of decisions taken.
        dt: seconds between decisions.
        terminated: ended by the scenario (crash, off-track, goal), not by the time limit.
        truncated: ended by the time limit.
        actions: ``(T, A)`` executed actions (normalised).
        agent_actions: ``(T, A)`` the agent's own actions (differ from ``actions`` when a
            mixer perturbs or replaces them).
        expert_actions: ``(T, A)`` the expert's label for each observation, or None.
        applied: ``(T, 2)`` ``[accel, steer]`` sent to the simulator (steer-only scenarios add
            the built-in speed controller's acceleration).
        rewards: ``(T,)`` environment rewards.
        metrics: per-step metrics of :func:`envs.scene.step_metrics`, each ``(T + 1,)``:
            index 0 is the state at reset, index ``t + 1`` the state after decision ``t``.
        latency_ms: ``(T,)`` decision time per step [ms], measured around the agent's
            ``act_batch`` call and divided by the number of environments in the batch.
        frames: ``(T, C, H, W)`` uint8 observations the decisions were taken on, or None.
        explanations: the agent's ``explain()`` per step, or None.
    """

    seed: int
    steps: int
    dt: float
    terminated: bool
    truncated: bool
    actions: np.ndarray
    agent_actions: np.ndarray
    expert_actions: np.ndarray | None
    applied: np.ndarray
    rewards: np.ndarray
    metrics: dict[str, np.ndarray]
    latency_ms: np.ndarray
    frames: np.ndarray | None = None
    explanations: list[dict[str, Any]] | None = None


@dataclass
class StepEvent:
    """What :func:`iter_episodes` tells an ``on_step`` callback after every decision.

    ``env`` is the :class:`~envs.DrivingEnv` itself when environments run in-process
    (``workers=1``), for rendering; None otherwise.
    """

    slot: int
    seed: int
    step: int
    obs: np.ndarray
    info: dict[str, Any]
    action: np.ndarray
    agent_action: np.ndarray
    expert_action: np.ndarray | None
    explanation: dict[str, Any]
    env: Any = None


@dataclass
class _Running:
    seed: int
    frames: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    agent_actions: list[np.ndarray] = field(default_factory=list)
    expert_actions: list[np.ndarray] = field(default_factory=list)
    applied: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    explanations: list[dict[str, Any]] = field(default_factory=list)


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


def make_vector_env(
    scenario: Scenario,
    n: int,
    *,
    in_process: bool,
    render_mode: str | None = None,
    fast: bool | None = None,
    idm_hint: bool = True,
) -> gymnasium.vector.VectorEnv:
    """``n`` environments of ``scenario``, in-process or one subprocess each, autoreset off."""
    make = functools.partial(
        envs.make, scenario, render_mode=render_mode, fast=fast, idm_hint=idm_hint
    )
    fns = [make] * n
    if in_process:
        return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED, copy=False)
    return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED, copy=False)


def iter_episodes(
    agent: Agent,
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    workers: int = 1,
    expert: Agent | None = None,
    mixer: ActionMixer | None = None,
    record_frames: bool = False,
    record_explanations: bool = False,
    on_step: Callable[[StepEvent], None] | None = None,
    render_mode: str | None = None,
    fast: bool | None = None,
    progress: bool | str = False,
    on_failure: Callable[[int, str], None] | None = None,
) -> Iterator[Episode]:
    """Drive ``agent`` through one episode per seed; yield each :class:`Episode` as it ends.

    Episodes come out in the order they finish (use ``Episode.seed``). Stopping the iteration
    early closes the environments.

    Args:
        agent: the agent whose actions are executed (unless ``mixer`` says otherwise).
        scenario: the scenario (with its overrides).
        seeds: one episode per seed, distinct.
        workers: parallel environments; above 1 each runs in its own subprocess.
        expert: an agent that labels every observation (``Episode.expert_actions``).
        mixer: decides the executed action from the agent's and the expert's (see
            :data:`ActionMixer`); default: the agent's action.
        record_frames: keep the observations (``Episode.frames``).
        record_explanations: keep ``agent.explain()`` per step.
        on_step: called with every decision of every environment, before it is executed
            (so ``event.env.render()`` shows the state the decision was taken in).
        render_mode: passed to the environments (``"human"`` needs ``workers=1``).
        fast: use the accelerated simulation (None: the default of :mod:`envs`).
        progress: show a progress bar (a string is used as its description).
        on_failure: what to do when an environment worker dies or raises mid-episode. None:
            raise :class:`WorkerFailure` naming the seed (stop cleanly: episodes already
            yielded are complete, nothing half-finished is yielded). A callable: it is called
            with ``(seed, reason)`` for each failed episode, the environments are restarted and
            the other interrupted episodes are run again from their start (same seeds, same
            outcome), so the iteration carries on without the failed seeds.
    """
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not seeds:
        return
    n_envs = min(workers, len(seeds))
    uses_idm = any(getattr(a, "uses_idm_hint", False) for a in (agent, expert) if a)
    make_vec = functools.partial(
        make_vector_env,
        scenario,
        in_process=workers == 1,
        render_mode=render_mode,
        fast=fast,
        idm_hint=uses_idm,
    )
    queue = list(reversed(seeds))
    bar = tqdm(
        total=len(seeds),
        desc=progress if isinstance(progress, str) else "episodes",
        unit="ep",
        disable=not progress,
        dynamic_ncols=True,
    )
    counter = _Counter(bar)
    steps = functools.partial(
        _drive,
        agent,
        scenario,
        expert=expert,
        mixer=mixer,
        record_frames=record_frames,
        record_explanations=record_explanations,
        on_step=on_step,
        counter=counter,
    )
    try:
        while queue:
            vec = make_vec(min(n_envs, len(queue)))
            broken = False
            try:
                yield from steps(vec, queue)
            except WorkerFailure as failure:
                broken = True
                if on_failure is None:
                    raise
                for seed, reason in failure.failed.items():
                    on_failure(seed, reason)
                    bar.update(1)
                queue.extend(reversed(failure.interrupted))  # restarted from scratch
            finally:
                _close(vec, broken)
    finally:
        bar.close()


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
class _Counter:
    """Progress bookkeeping shared across vector env restarts."""

    bar: Any
    frames: int = 0
    started: float = field(default_factory=time.perf_counter)

    def episode_done(self, steps: int) -> None:
        self.frames += steps
        self.bar.update(1)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix(frames=self.frames, fps=f"{self.frames / elapsed:.0f}")


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


def _close(vec: gymnasium.vector.VectorEnv, broken: bool) -> None:
    """Close a vector env; after a failure, terminate and reap its workers instead."""
    if not broken or not isinstance(vec, AsyncVectorEnv):
        vec.close()
        return
    for process in vec.processes:
        if process.is_alive():
            process.terminate()
        process.join(timeout=2.0)
        if process.is_alive():
            process.kill()
            process.join()
    for pipe in vec.parent_pipes:
        if pipe is not None:
            pipe.close()
    vec.closed = True  # nothing left for gymnasium's own close() to talk to


def _drive(
    agent: Agent,
    scenario: Scenario,
    vec: gymnasium.vector.VectorEnv,
    queue: list[int],
    *,
    expert: Agent | None,
    mixer: ActionMixer | None,
    record_frames: bool,
    record_explanations: bool,
    on_step: Callable[[StepEvent], None] | None,
    counter: _Counter,
) -> Iterator[Episode]:
    """Run the seeds of ``queue`` (popped from its end) in ``vec`` until it is empty.

    Raises:
        WorkerFailure: an environment failed; the queue holds the seeds not started yet.
    """
    n_envs = vec.num_envs
    running: list[_Running | None] = [None] * n_envs
    start = [queue.pop() for _ in range(n_envs)]
    try:
        obs, info = vec.reset(seed=start)
    except Exception as exc:
        raise _failure(vec, list(range(n_envs)), start, exc) from exc
    infos = unbatch_info(info, n_envs)
    for slot, seed in enumerate(start):
        running[slot] = _start(agent, expert, seed, slot, infos[slot])
    while any(r is not None for r in running):
        active = [i for i, r in enumerate(running) if r is not None]
        t0 = time.perf_counter()
        agent_actions = agent.act_batch(obs[active], [infos[i] for i in active], active)
        latency = (time.perf_counter() - t0) * 1000.0 / len(active)
        expert_actions = (
            expert.act_batch(obs[active], [infos[i] for i in active], active)
            if expert is not None
            else None
        )
        actions = np.zeros((n_envs, *vec.single_action_space.shape), dtype=np.float32)
        explained: dict[int, dict[str, Any]] = {}
        for k, slot in enumerate(active):
            run = running[slot]
            exp = expert_actions[k] if expert_actions is not None else None
            act = np.asarray(agent_actions[k], dtype=np.float32)
            executed = act if mixer is None else mixer(run.seed, len(run.actions), act, exp)
            actions[slot] = np.clip(executed, -1.0, 1.0)
            if record_frames:
                run.frames.append(obs[slot].copy())
            run.agent_actions.append(act)
            if exp is not None:
                run.expert_actions.append(np.asarray(exp, dtype=np.float32))
            run.latency_ms.append(latency)
            if record_explanations or on_step is not None:
                explained[slot] = agent.explain(slot)
                if record_explanations:
                    run.explanations.append(explained[slot])
        if on_step is not None:
            for slot in active:
                run = running[slot]
                on_step(
                    StepEvent(
                        slot=slot,
                        seed=run.seed,
                        step=len(run.actions),
                        obs=obs[slot],
                        info=infos[slot],
                        action=actions[slot],
                        agent_action=run.agent_actions[-1],
                        expert_action=run.expert_actions[-1] if expert is not None else None,
                        explanation=explained[slot],
                        env=vec.envs[slot] if isinstance(vec, SyncVectorEnv) else None,
                    )
                )
        try:
            obs, reward, terminated, truncated, info = vec.step(actions)
        except Exception as exc:
            raise _failure(vec, active, [r.seed if r else None for r in running], exc) from exc
        infos = unbatch_info(info, n_envs)
        finished = np.zeros(n_envs, dtype=bool)
        for slot in active:
            run = running[slot]
            run.actions.append(actions[slot].copy())
            run.rewards.append(float(reward[slot]))
            run.metrics.append(infos[slot]["metrics"])
            run.applied.append(np.asarray(infos[slot]["applied_action"], dtype=np.float32))
            if terminated[slot] or truncated[slot]:
                finished[slot] = True
                episode = _finish(run, scenario.dt, terminated[slot], truncated[slot])
                running[slot] = None
                counter.episode_done(episode.steps)
                yield episode
        restart = list(np.flatnonzero(finished))[: len(queue)]
        if restart:
            mask = np.zeros(n_envs, dtype=bool)
            mask[restart] = True
            new_seeds: list[int | None] = [None] * n_envs
            for slot in restart:
                new_seeds[slot] = queue.pop()
            try:
                obs_new, info_new = vec.reset(seed=new_seeds, options={"reset_mask": mask})
            except Exception as exc:
                current = [
                    new_seeds[s] if mask[s] else (r.seed if r else None)
                    for s, r in enumerate(running)
                ]
                busy = [s for s, seed in enumerate(current) if seed is not None]
                raise _failure(vec, busy, current, exc) from exc
            infos_new = unbatch_info(info_new, n_envs)
            obs = obs.copy()
            for slot in restart:
                obs[slot] = obs_new[slot]
                infos[slot] = infos_new[slot]
                running[slot] = _start(agent, expert, new_seeds[slot], slot, infos[slot])


def _failure(
    vec: gymnasium.vector.VectorEnv,
    active: list[int],
    seeds: Sequence[int | None],
    exc: BaseException,
) -> WorkerFailure:
    """The :class:`WorkerFailure` for an exception raised by ``vec`` with ``active`` slots."""
    failed_slots = _failed_slots(vec, active)
    failed = {int(seeds[s]): _describe_exit(vec, s, exc) for s in failed_slots}
    interrupted = [
        int(seed) for s, seed in enumerate(seeds) if s not in failed_slots and seed is not None
    ]
    return WorkerFailure(failed, interrupted)


def rollout(agent: Agent, scenario: Scenario, seeds: Sequence[int], **kwargs: Any) -> list[Episode]:
    """All episodes of :func:`iter_episodes`, in the order of ``seeds``."""
    by_seed = {ep.seed: ep for ep in iter_episodes(agent, scenario, seeds, **kwargs)}
    return [by_seed[int(s)] for s in seeds]


def _start(
    agent: Agent, expert: Agent | None, seed: int, slot: int, info: dict[str, Any]
) -> _Running:
    agent.reset(seed, slot)
    if expert is not None:
        expert.reset(seed, slot)
    return _Running(seed=seed, metrics=[info["metrics"]])


def _finish(run: _Running, dt: float, terminated: bool, truncated: bool) -> Episode:
    keys = run.metrics[0].keys()
    return Episode(
        seed=run.seed,
        steps=len(run.actions),
        dt=dt,
        terminated=bool(terminated),
        truncated=bool(truncated),
        actions=np.stack(run.actions),
        agent_actions=np.stack(run.agent_actions),
        expert_actions=np.stack(run.expert_actions) if run.expert_actions else None,
        applied=np.stack(run.applied),
        rewards=np.asarray(run.rewards, dtype=np.float64),
        metrics={k: np.array([float(m[k]) for m in run.metrics]) for k in keys},
        latency_ms=np.asarray(run.latency_ms, dtype=np.float64),
        frames=np.stack(run.frames) if run.frames else None,
        explanations=run.explanations or None,
    )
