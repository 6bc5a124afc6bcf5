"""Worker processes that each drive whole episodes: the rollout when no decision needs the batch.

When every agent of a rollout decides inside a worker (``Agent.decides_in_worker``: collecting
with modular-oracle, evaluating the modular agents or a baseline) and nothing watches the steps,
the main process has nothing to do between steps. Then each worker runs the one rollout loop
itself over one in-process environment (:class:`driving.rollout._Fleet`), episode after episode,
with the seeds the main process hands out, and sends back each finished
:class:`~driving.rollout.Episode`: no step waits for another worker or for the main process, and
only finished episodes cross the process boundary (issue 19).

An episode depends on its seed alone, so the episodes are the same as in one process.

A worker that dies (killed, out of memory) or raises costs the episode it was running: the pool
raises :class:`~driving.workers.WorkerFailure` naming it, with the seeds the other workers were
running as interrupted, as the vector envs of :mod:`driving.workers` do.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol

from driving.workers import WorkerFailure, stop_process

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from driving.rollout import Episode


class OneEnvFleet(Protocol):
    """What a worker drives: the rollout's fleet of one in-process environment."""

    busy: bool

    def start(self, seeds: list[int]) -> None: ...

    def decide(self, report: bool) -> tuple[Any, list[Any]]: ...

    def step(self, actions: Any) -> list[Episode]: ...

    def close(self, broken: bool) -> None: ...


class EpisodePool:
    """``size`` worker processes, each driving the seeds it is given to the end.

    Offers the rollout loop the interface of its fleets: :meth:`start` hands seeds to idle
    workers, :meth:`step` waits for at least one finished episode.

    Args:
        size: worker processes.
        make_fleet: builds, inside a worker, the fleet of one in-process environment that
            drives its episodes (inherited by the forked worker, never pickled). The workers
            are forked, so the agents are copied as they are (``fork`` start method).
    """

    def __init__(self, size: int, make_fleet: Callable[[], OneEnvFleet]) -> None:
        self.size = size
        # fork: the workers inherit make_fleet (a closure over the agents) without pickling it
        context = multiprocessing.get_context("fork")
        self._processes: list[BaseProcess] = []
        self._pipes: list[Connection] = []
        self.running: list[int | None] = [None] * size
        for _ in range(size):
            parent, child = context.Pipe()
            inherited = [*self._pipes, parent]  # the child closes its copies of these
            process = context.Process(
                target=_serve, args=(child, inherited, make_fleet), daemon=True
            )
            process.start()
            child.close()
            self._processes.append(process)
            self._pipes.append(parent)

    @property
    def busy(self) -> bool:
        return any(seed is not None for seed in self.running)

    @property
    def idle(self) -> list[int]:
        return [slot for slot, seed in enumerate(self.running) if seed is None]

    def seeds(self) -> list[int]:
        """The seeds being driven."""
        return [seed for seed in self.running if seed is not None]

    def start(self, seeds: list[int]) -> None:
        """Hand ``seeds`` to idle workers (the first ``len(seeds)`` of them)."""
        for slot, seed in zip(self.idle, seeds, strict=False):
            try:
                self._pipes[slot].send(seed)
            except OSError:  # the worker died while idle: no episode lost yet
                raise self._failure({}) from None
            self.running[slot] = seed

    def decide(self, report: bool) -> tuple[None, list[Any]]:
        """Nothing to decide here: the workers decide."""
        return None, []

    def step(self, actions: None) -> list[Episode]:
        """Wait until at least one worker reports; return the episodes that finished."""
        slots = [slot for slot, seed in enumerate(self.running) if seed is not None]
        ready = wait([self._pipes[s] for s in slots] + [self._processes[s].sentinel for s in slots])
        finished: list[Episode] = []
        for slot in slots:
            pipe, process = self._pipes[slot], self._processes[slot]
            if pipe not in ready and process.sentinel not in ready:
                continue
            try:
                kind, payload = pipe.recv()
            except (EOFError, OSError):
                raise self._failure({slot: _exit_reason(process)}) from None
            if kind == "failed":
                raise self._failure({slot: payload})
            finished.append(payload)
            self.running[slot] = None
        return finished

    def close(self, broken: bool) -> None:
        """Stop the workers: politely when they are idle, terminated otherwise."""
        for slot, pipe in enumerate(self._pipes):
            if not broken and self.running[slot] is None:
                with contextlib.suppress(OSError):
                    pipe.send(None)
        for slot, process in enumerate(self._processes):
            stop_process(process, broken or self.running[slot] is not None, wait_s=5.0)
        for pipe in self._pipes:
            pipe.close()

    def _failure(self, failed: dict[int, str]) -> WorkerFailure:
        seeds = {slot: seed for slot, seed in enumerate(self.running) if seed is not None}
        return WorkerFailure(
            {seeds[slot]: reason for slot, reason in failed.items() if slot in seeds},
            [seed for slot, seed in seeds.items() if slot not in failed],
        )


def _exit_reason(process: BaseProcess) -> str:
    process.join(timeout=1.0)
    code = process.exitcode
    if code is not None and code < 0:
        return f"worker killed by signal {-code}"
    return f"worker exited with status {code}"


def _serve(
    pipe: Connection, inherited: list[Connection], make_fleet: Callable[[], OneEnvFleet]
) -> None:
    """A worker's life: drive each seed received to the end and send the episode back.

    Ctrl-C reaches the whole process group; the main process decides what stops, so the
    worker ignores SIGINT (no traceback from every worker) and is terminated by the pool. A
    worker whose main process was killed (SIGKILL: no chance to terminate it) stops within a
    step or a second: it must not live on holding what it inherited, such as a dataset's
    writer lock. It closes its copies of the main process's pipe ends (the forked copies would
    keep the other workers' pipes open after the main process is gone).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: see workers.py
    for connection in inherited:
        connection.close()
    parent = os.getppid()
    fleet = make_fleet()
    broken = False
    try:
        while (seed := _next_seed(pipe, parent)) is not None:
            try:
                fleet.start([seed])
                while fleet.busy:
                    if os.getppid() != parent:
                        broken = True
                        return
                    actions, _ = fleet.decide(report=False)
                    for episode in fleet.step(actions):
                        pipe.send(("episode", episode))
            except WorkerFailure as failure:
                broken = True
                pipe.send(("failed", failure.failed.get(seed, str(failure))))
                return
    except (EOFError, BrokenPipeError):  # the main process is gone
        broken = True
    finally:
        fleet.close(broken)


def _next_seed(pipe: Connection, parent: int) -> int | None:
    """The next seed from the main process; None to stop (asked to, or the main is gone)."""
    while not pipe.poll(1.0):
        if os.getppid() != parent:
            return None
    return pipe.recv()
