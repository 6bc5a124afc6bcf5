"""The one rollout loop: any agent, one or many environments, batched decisions.

Collection, evaluation, DAgger, perception scoring and watching all drive episodes through
:func:`iter_episodes`. Each episode is fully determined by its seed (the environment is reset
with it and the agent's slot is reset with it), so results do not depend on the number of
workers or on which worker ran which seed.

The environments (:mod:`driving.workers`) run in-process for one worker and one subprocess
each above that. When an environment finishes, the loop resets just that one with the next
seed. Where each decision is taken is chosen per run (:class:`_Layout`, issue 19):

- agents that read only ``obs`` and ``info`` (``Agent.decides_in_worker``) decide inside the
  workers, which then send back their decisions instead of the ground-truth scene;
- when no decision is left for this process and nothing watches the steps, each worker drives
  whole episodes (:class:`~driving.pool.EpisodePool`): no step waits for another;
- an agent deciding here (a network on a GPU; on the CPU a network decides in the workers,
  one thread each) decides for all the running environments of a group in one
  :meth:`~agents.base.Agent.act_batch` call on its device, while the other group steps
  (:class:`_Pipeline`), on the CPU threads the workers leave it.
"""

from __future__ import annotations

import enum
import functools
import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import gymnasium
import numpy as np
from tqdm.auto import tqdm

from agents.base import Agent
from driving.mixers import ActionMixer
from driving.pool import EpisodePool
from driving.workers import (
    WorkerFailure,
    close_vector_env,
    guarded,
    is_in_process,
    make_vector_env,
    unbatch_info,
)
from envs.scenarios import Scenario

T = TypeVar("T")


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
        latency_ms: ``(T,)`` decision time per step [ms]: around the agent's ``act`` call
            when it decides inside a worker, else around its ``act_batch`` call divided by
            the number of environments in the batch.
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


class Signal(enum.Enum):
    """What an ``on_step`` callback may return to steer the loop (None: carry on)."""

    STOP = "stop"
    """End the iteration now; the running episodes are dropped, nothing more is yielded."""
    RESTART = "restart"
    """Drop the running episodes and drive their seeds again from the start."""


OnStep = Callable[[StepEvent], Signal | None]
"""Called with every decision of every environment, before it is executed."""


class SeedQueue:
    """The seeds still to drive, in order; seeds given back go to the front."""

    def __init__(self, seeds: Iterable[int]) -> None:
        self._pending = deque(int(s) for s in seeds)

    def __len__(self) -> int:
        return len(self._pending)

    def take(self, n: int) -> list[int]:
        """The next ``n`` seeds (fewer when fewer are left)."""
        return [self._pending.popleft() for _ in range(min(n, len(self._pending)))]

    def give_back(self, seeds: Sequence[int]) -> None:
        """Put ``seeds`` (interrupted episodes) back at the front, in their order."""
        self._pending.extendleft(reversed(list(seeds)))


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
    on_step: OnStep | None = None,
    render_mode: str | None = None,
    fast: bool | None = None,
    progress: bool | str = False,
    on_failure: Callable[[int, str], None] | None = None,
    pipeline: bool = True,
    agent_here: bool = False,
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
            :mod:`driving.mixers`); default: the agent's action.
        record_frames: keep the observations (``Episode.frames``).
        record_explanations: keep ``agent.explain()`` per step.
        on_step: called with every decision of every environment, before it is executed
            (so ``event.env.render()`` shows the state the decision was taken in); it may
            return a :class:`Signal` to stop or restart the loop.
        render_mode: passed to the environments (``"human"`` needs ``workers=1``).
        fast: use the accelerated simulation (None: the default of :mod:`envs`).
        progress: show a progress bar (a string is used as its description).
        on_failure: what to do when an environment worker dies or raises mid-episode. None:
            raise :class:`~driving.workers.WorkerFailure` naming the seed (stop cleanly:
            episodes already yielded are complete, nothing half-finished is yielded). A
            callable: it is called with ``(seed, reason)`` for each failed episode, the
            environments are restarted and the other interrupted episodes are run again from
            their start (same seeds, same outcome), so the iteration carries on without the
            failed seeds.
        pipeline: when the agent decides in this process (a network) with ``workers`` above
            1, let one group of environments step while it decides for the other (False:
            every environment waits for every decision; ``driving bench evaluate`` compares).
        agent_here: the agent decides in this process even when it could decide inside the
            workers (a network on the CPU; ``driving bench evaluate`` compares).
    """
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    watched = on_step is not None or bool(render_mode)
    layout = _Layout.choose(agent, expert, workers, watched, agent_here)
    uses_idm = any(getattr(a, "uses_idm_hint", False) for a in (agent, expert) if a)
    explain = record_explanations or on_step is not None
    make_vec = functools.partial(
        make_vector_env, scenario, render_mode=render_mode, fast=fast, idm_hint=uses_idm
    )
    fleet = functools.partial(
        _Fleet,
        agent=agent,
        expert=expert,
        mixer=mixer,
        dt=scenario.dt,
        record_frames=record_frames,
        record_explanations=record_explanations,
        explain=explain,
    )

    def one_env_fleet() -> _Fleet:
        """A pool worker's fleet (in the forked worker: one thread, as DataLoader workers)."""
        for a in (agent, expert):
            if a is not None:
                a.limit_threads(1)
        return fleet(make_vec(1, in_process=True))

    def make_fleet(n: int) -> _Fleet | _Pipeline | EpisodePool:
        if layout.in_process:
            return fleet(make_vec(n, in_process=True))
        if layout.pool:
            return EpisodePool(n, one_env_fleet)
        roles = {"agent": agent, "expert": expert}
        deciding = {role: roles[role] for role in layout.remote}
        vec = functools.partial(
            make_vec,
            in_process=False,
            deciding=deciding,
            explain=explain,
            keep_scene=layout.main_reads_scene,
        )
        if not (pipeline and layout.pipelined) or n < 2:
            return fleet(vec(n), remote=layout.remote)
        half = n // 2
        first = fleet(vec(half), remote=layout.remote)
        return _Pipeline([first, fleet(vec(n - half), remote=layout.remote, offset=half)])

    queue = SeedQueue(seeds)
    threads = layout.inference_threads(workers)
    restore = agent.limit_threads(threads) if threads else None
    try:
        with _Progress(len(seeds), progress) as counter:
            while queue:
                running = make_fleet(min(workers, len(queue)))
                broken = False
                try:
                    signal = yield from _drive(running, queue, on_step, counter)
                except WorkerFailure as failure:
                    broken = True
                    if on_failure is None:
                        raise
                    for seed, reason in failure.failed.items():
                        on_failure(seed, reason)
                        counter.skipped()
                    queue.give_back(failure.interrupted)  # run again from their start
                    continue
                except KeyboardInterrupt:  # Ctrl-C, SIGTERM: stop the workers now, not politely
                    broken = True
                    raise
                finally:
                    running.close(broken)
                if signal is Signal.STOP:
                    return
                if signal is Signal.RESTART:
                    queue.give_back(running.seeds())
    finally:
        if restore is not None:
            agent.limit_threads(restore)


def rollout(agent: Agent, scenario: Scenario, seeds: Sequence[int], **kwargs: Any) -> list[Episode]:
    """All episodes of :func:`iter_episodes`, in the order of ``seeds``."""
    by_seed = {ep.seed: ep for ep in iter_episodes(agent, scenario, seeds, **kwargs)}
    return [by_seed[int(s)] for s in seeds]


def _drive(
    fleet: _Fleet, queue: SeedQueue, on_step: OnStep | None, counter: _Progress
) -> Generator[Episode, None, Signal | None]:
    """Run the queue's seeds in ``fleet`` until the queue is empty or ``on_step`` signals.

    Raises:
        WorkerFailure: an environment failed (the queue holds the seeds not started yet).
    """
    fleet.start(queue.take(fleet.size))
    while fleet.busy:
        actions, events = fleet.decide(report=on_step is not None)
        for event in events:
            signal = on_step(event)  # type: ignore[misc]  (events only exist with on_step)
            if signal is not None:
                return signal
        for episode in fleet.step(actions):
            counter.episode_done(episode.steps)
            yield episode
        fleet.start(queue.take(len(fleet.idle)))
    return None


@dataclass(frozen=True)
class _Layout:
    """Where the decisions of a rollout are taken (issue 19).

    Attributes:
        in_process: one worker: everything in this process.
        pool: every agent decides in a worker and nothing watches the steps: each worker
            drives whole episodes (:class:`~driving.pool.EpisodePool`).
        remote: the roles (``"agent"``, ``"expert"``) that decide inside the vector env's
            workers (:class:`~driving.workers.DecidingEnv`); the others decide here.
        pipelined: the agent decides here for a batch: two groups of environments, one
            stepping while the agent decides for the other (:class:`_Pipeline`).
        main_reads_scene: something here reads the ground-truth scene (a privileged agent
            deciding here, or an ``on_step`` hook), so the workers still send it.
    """

    in_process: bool
    pool: bool
    remote: frozenset[str]
    pipelined: bool
    main_reads_scene: bool

    @classmethod
    def choose(
        cls,
        agent: Agent,
        expert: Agent | None,
        workers: int,
        watched: bool,
        agent_here: bool = False,
    ) -> _Layout:
        roles = {"agent": agent} | ({"expert": expert} if expert is not None else {})
        remote = frozenset(
            r for r, a in roles.items() if a.decides_in_worker and not (r == "agent" and agent_here)
        )
        local = [a for r, a in roles.items() if r not in remote]
        return cls(
            in_process=workers == 1,
            pool=len(remote) == len(roles) and not watched,
            remote=remote,
            pipelined="agent" not in remote and not watched,
            main_reads_scene=watched or any(a.privileged for a in local),
        )

    def inference_threads(self, workers: int) -> int | None:
        """CPU threads for the agent deciding here: beside ``workers`` busy workers the cores
        they leave, at least one; in-process, one for an agent that would decide in a worker
        with more workers (a CPU network: its float sums then run in the same order whatever
        the number of workers, so its episodes are the same); None: leave it as it is."""
        if self.in_process:
            return 1 if "agent" in self.remote else None
        if "agent" in self.remote:
            return None
        return max(1, len(os.sched_getaffinity(0)) - workers)


@dataclass
class _Running:
    """The growing record of one running episode."""

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

    def finish(self, dt: float, terminated: bool, truncated: bool) -> Episode:
        keys = self.metrics[0].keys()
        return Episode(
            seed=self.seed,
            steps=len(self.actions),
            dt=dt,
            terminated=bool(terminated),
            truncated=bool(truncated),
            actions=np.stack(self.actions),
            agent_actions=np.stack(self.agent_actions),
            expert_actions=np.stack(self.expert_actions) if self.expert_actions else None,
            applied=np.stack(self.applied),
            rewards=np.asarray(self.rewards, dtype=np.float64),
            metrics={k: np.array([float(m[k]) for m in self.metrics]) for k in keys},
            latency_ms=np.asarray(self.latency_ms, dtype=np.float64),
            frames=np.stack(self.frames) if self.frames else None,
            explanations=self.explanations or None,
        )


class _Fleet:
    """A vector env with the episode each of its slots is running (None: idle).

    Every call into the vector env goes through :func:`driving.workers.guarded`. The roles in
    ``remote`` decide inside the workers (their decisions arrive in ``info["decisions"]``);
    the agents' slots are numbered from ``offset`` (a second group of a :class:`_Pipeline`).
    """

    def __init__(
        self,
        vec: gymnasium.vector.VectorEnv,
        *,
        agent: Agent,
        expert: Agent | None,
        mixer: ActionMixer | None,
        dt: float,
        record_frames: bool,
        record_explanations: bool,
        explain: bool,
        remote: frozenset[str] = frozenset(),
        offset: int = 0,
    ) -> None:
        self.vec = vec
        self.size = vec.num_envs
        self.remote = remote
        self.offset = offset
        self.agent, self.expert, self.mixer, self.dt = agent, expert, mixer, dt
        self.record_frames = record_frames
        self.record_explanations = record_explanations
        self.explain = explain
        self.running: list[_Running | None] = [None] * self.size
        self._sent: np.ndarray | None = None
        self.obs: np.ndarray | None = None
        self.infos: list[dict[str, Any]] = [{} for _ in range(self.size)]

    @property
    def busy(self) -> bool:
        return any(r is not None for r in self.running)

    @property
    def idle(self) -> list[int]:
        return [slot for slot, r in enumerate(self.running) if r is None]

    def seeds(self) -> list[int]:
        """The seeds of the running episodes."""
        return [r.seed for r in self.running if r is not None]

    def _slot_seeds(self) -> list[int | None]:
        return [r.seed if r is not None else None for r in self.running]

    def start(self, seeds: list[int]) -> None:
        """Reset idle slots with ``seeds`` (the first ``len(seeds)`` idle slots)."""
        if not seeds:
            return
        slots = self.idle[: len(seeds)]
        new: list[int | None] = [None] * self.size
        for slot, seed in zip(slots, seeds, strict=True):
            new[slot] = seed
        busy = [n if n is not None else c for n, c in zip(new, self._slot_seeds(), strict=True)]
        if self.obs is None:  # the first reset resets every slot
            obs, info = guarded(self.vec, busy, lambda: self.vec.reset(seed=new))
            self.obs = obs
        else:
            mask = np.array([s is not None for s in new])
            obs, info = guarded(
                self.vec, busy, lambda: self.vec.reset(seed=new, options={"reset_mask": mask})
            )
            self.obs = self.obs.copy()
            self.obs[slots] = obs[slots]
        infos = unbatch_info(info, self.size)
        for slot in slots:
            self.infos[slot] = infos[slot]
            seed = int(new[slot])
            if "agent" not in self.remote:
                self.agent.reset(seed, self.offset + slot)
            if self.expert is not None and "expert" not in self.remote:
                self.expert.reset(seed, self.offset + slot)
            self.running[slot] = _Running(seed=seed, metrics=[infos[slot]["metrics"]])

    def decide(self, report: bool) -> tuple[np.ndarray | None, list[StepEvent]]:
        """The executed action of every slot ``(N, A)`` (0 for idle ones; None when no slot
        runs), and one :class:`StepEvent` per running slot when ``report``."""
        active = [slot for slot, r in enumerate(self.running) if r is not None]
        if not active:
            return None, []
        agent_actions, latency, explanations = self._decisions("agent", self.agent, active)
        expert_actions = None
        if self.expert is not None:
            expert_actions, _, _ = self._decisions("expert", self.expert, active)
        actions = np.zeros((self.size, *self.vec.single_action_space.shape), dtype=np.float32)
        events = []
        for k, slot in enumerate(active):
            run = self.running[slot]
            exp = None if expert_actions is None else expert_actions[k]
            act = agent_actions[k]
            step = len(run.actions)
            executed = act if self.mixer is None else self.mixer(run.seed, step, act, exp)
            actions[slot] = np.clip(executed, -1.0, 1.0)
            if self.record_frames:
                run.frames.append(self.obs[slot].copy())
            run.agent_actions.append(act)
            if exp is not None:
                run.expert_actions.append(exp)
            run.latency_ms.append(latency[k])
            if self.record_explanations:
                run.explanations.append(explanations[k])
            if report:
                events.append(
                    StepEvent(
                        slot=self.offset + slot,
                        seed=run.seed,
                        step=step,
                        obs=self.obs[slot],
                        info=self.infos[slot],
                        action=actions[slot],
                        agent_action=act,
                        expert_action=exp,
                        explanation=explanations[k],
                        env=self.vec.envs[slot] if is_in_process(self.vec) else None,
                    )
                )
        return actions, events

    def _decisions(
        self, role: str, agent: Agent, active: list[int]
    ) -> tuple[np.ndarray, list[float], list[dict[str, Any]]]:
        """``role``'s actions ``(B, A)`` float32 for the ``active`` slots, each decision's time
        [ms] and explanation (empty unless explaining), taken here or read from the workers."""
        if role in self.remote:
            decided = [self.infos[slot]["decisions"][role] for slot in active]
            actions = np.stack([np.asarray(d.action, dtype=np.float32) for d in decided])
            return actions, [d.latency_ms for d in decided], [d.explanation for d in decided]
        slots = [self.offset + slot for slot in active]
        t0 = time.perf_counter()
        actions = np.asarray(
            agent.act_batch(self.obs[active], [self.infos[i] for i in active], slots), np.float32
        )
        latency = (time.perf_counter() - t0) * 1000.0 / len(active)
        explanations = [agent.explain(s) if self.explain else {} for s in slots]
        return actions, [latency] * len(active), explanations

    def step(self, actions: np.ndarray | None) -> list[Episode]:
        """Execute ``actions`` in every slot; return the episodes that ended."""
        if actions is None:
            return []
        result = guarded(self.vec, self._slot_seeds(), lambda: self.vec.step(actions))
        return self._record(actions, result)

    def step_async(self, actions: np.ndarray) -> None:
        """Send ``actions`` to the subprocess environments, which step in the background."""
        self._sent = actions
        guarded(self.vec, self._slot_seeds(), lambda: self.vec.step_async(actions))

    def step_wait(self) -> list[Episode]:
        """Collect the step sent by :meth:`step_async`; return the episodes that ended."""
        return self._record(self._sent, guarded(self.vec, self._slot_seeds(), self.vec.step_wait))

    def _record(self, actions: np.ndarray, result: tuple[Any, ...]) -> list[Episode]:
        obs, reward, terminated, truncated, info = result
        self.obs = obs
        self.infos = unbatch_info(info, self.size)
        finished = []
        for slot, run in enumerate(self.running):
            if run is None:
                continue
            run.actions.append(actions[slot].copy())
            run.rewards.append(float(reward[slot]))
            run.metrics.append(self.infos[slot]["metrics"])
            run.applied.append(np.asarray(self.infos[slot]["applied_action"], dtype=np.float32))
            if terminated[slot] or truncated[slot]:
                finished.append(run.finish(self.dt, terminated[slot], truncated[slot]))
                self.running[slot] = None
        return finished

    def close(self, broken: bool) -> None:
        """Close the environments (their workers terminated after a failure)."""
        close_vector_env(self.vec, broken)


class _Pipeline:
    """Two fleets (groups of environments): while the agent decides for one, the other steps.

    A network agent deciding in the main process would otherwise leave the workers idle while
    it runs, and itself wait while they step (issue 19). Here :meth:`step` sends the current
    group's actions and switches to the other group, waiting for the step it sent before; the
    loop then decides for that group while the first one steps. Slots are numbered across the
    groups (the second group's from the first group's size).
    """

    def __init__(self, groups: list[_Fleet]) -> None:
        self.groups = groups
        self.size = sum(g.size for g in groups)
        self.current = 0
        self.pending = [False] * len(groups)

    @property
    def busy(self) -> bool:
        return any(g.busy for g in self.groups)

    @property
    def idle(self) -> list[int]:
        """Idle slots of the groups not stepping now (those can start an episode)."""
        return [
            g.offset + slot
            for g, pending in zip(self.groups, self.pending, strict=True)
            if not pending
            for slot in g.idle
        ]

    def seeds(self) -> list[int]:
        return [seed for g in self.groups for seed in g.seeds()]

    def start(self, seeds: list[int]) -> None:
        """Start ``seeds`` in the idle slots of the groups not stepping now, in slot order."""
        seeds = list(seeds)
        for g, pending in zip(self.groups, self.pending, strict=True):
            if not pending and seeds:
                take, seeds = seeds[: len(g.idle)], seeds[len(g.idle) :]
                self._guard(lambda g=g, take=take: g.start(take))

    def decide(self, report: bool) -> tuple[np.ndarray | None, list[StepEvent]]:
        """The current group's actions (None when it runs nothing)."""
        return self._guard(lambda: self.groups[self.current].decide(report))

    def step(self, actions: np.ndarray | None) -> list[Episode]:
        """Send the current group's ``actions``; switch to the next group and return the
        episodes its previous step ended."""
        group = self.groups[self.current]
        if actions is not None:
            self._guard(lambda: group.step_async(actions))
            self.pending[self.current] = True
        self.current = (self.current + 1) % len(self.groups)
        if not self.pending[self.current]:
            return []
        self.pending[self.current] = False
        return self._guard(self.groups[self.current].step_wait)

    def close(self, broken: bool) -> None:
        for g in self.groups:
            g.close(broken)

    def _guard(self, call: Callable[[], T]) -> T:
        """``call()``; a :class:`WorkerFailure` in one group also interrupts the other's
        episodes."""
        try:
            return call()
        except WorkerFailure as failure:
            lost = set(failure.failed) | set(failure.interrupted)
            others = [seed for seed in self.seeds() if seed not in lost]
            raise WorkerFailure(failure.failed, [*failure.interrupted, *others]) from failure


class _Progress:
    """The progress bar: episodes, frames and frames/s, across vector env restarts."""

    def __init__(self, total: int, progress: bool | str) -> None:
        self.bar = tqdm(
            total=total,
            desc=progress if isinstance(progress, str) else "episodes",
            unit="ep",
            disable=not progress,
            dynamic_ncols=True,
        )
        self.frames = 0
        self.started = time.perf_counter()

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def episode_done(self, steps: int) -> None:
        self.frames += steps
        self.bar.update(1)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix(frames=self.frames, fps=f"{self.frames / elapsed:.0f}")

    def skipped(self) -> None:
        self.bar.update(1)
