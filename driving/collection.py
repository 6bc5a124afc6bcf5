"""Recording expert demonstrations into a dataset folder (``driving collect``).

Episodes run through the one rollout loop (:func:`driving.rollout.iter_episodes`), in parallel
with ``workers``; every ``shard_episodes`` finished episodes are written as one shard of a
:mod:`driving.dataset` folder. The expert (by default the acting agent itself) labels every
frame with its clean action.

DART (:class:`~driving.mixers.DartNoise`): with ``noise_steer`` / ``noise_accel`` Gaussian
noise is added to the EXECUTED action, so the car visits the states just off the expert's path,
while the label stays the expert's clean action.

Training seeds only (:func:`driving.seeds.training_seeds`): a seed range that touches the
validation or evaluation seeds is refused. The seeds are fixed when the dataset is created;
``resume`` collects the ones still missing after an interruption, with the recorded settings.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import Agent
from agents.registry import make_agent
from driving.dataset import MANIFEST, DatasetWriter, check_new_root
from driving.mixers import ActionMixer, DartNoise
from driving.rollout import Episode, iter_episodes
from driving.seeds import training_seeds
from driving.workers import WorkerFailure
from envs.errors import RunError, UserError
from envs.nuisances import refuse_in_training
from envs.scenarios import Scenario, get_scenario


def collect(
    writer: DatasetWriter,
    agent: Agent,
    *,
    expert: Agent | None = None,
    mixer: ActionMixer | None = None,
    workers: int = 1,
    shard_episodes: int = 8,
    fast: bool | None = None,
    provenance: dict[str, Any] | None = None,
    progress: bool | str = False,
) -> tuple[int, int]:
    """Collect the seeds ``writer`` still misses; return ``(episodes, frames)`` written now.

    Args:
        writer: the dataset being written (its manifest holds the scenario and the seeds).
        agent: the agent whose actions are executed (through ``mixer``).
        expert: the labelling agent; None when ``agent`` is the expert, whose own actions are
            then the labels (exact, and the agent is not asked twice per step).
        mixer: decides the executed action (e.g. :class:`DartNoise`); None: the agent's.
        workers: parallel environments.
        shard_episodes: episodes per shard (the unit lost if the process is killed).
        fast: the accelerated simulation (None: the project default).
        provenance: recorded in every episode record of the shards written.
        progress: show the rollout's progress bar (episodes, frames, frames/s).

    Finished episodes still buffered when the collection is interrupted (Ctrl-C, a failed
    environment worker) are written before the exception propagates; ``--resume`` (or a new
    call on :meth:`DatasetWriter.open`) collects the rest.
    """
    buffer: list[Episode] = []
    written = [0, 0]

    def flush() -> None:
        batch = buffer[:]
        buffer.clear()  # first, so a failing write is not retried by the handler below
        if batch:
            writer.add(batch, provenance)
            written[0] += len(batch)
            written[1] += sum(e.steps for e in batch)

    episodes = iter_episodes(
        agent,
        writer.scenario,
        writer.missing_seeds(),
        workers=workers,
        expert=expert,
        mixer=mixer,
        record_frames=True,
        fast=fast,
        progress=progress,
    )
    try:
        for episode in episodes:
            if expert is None:
                episode = dataclasses.replace(episode, expert_actions=episode.agent_actions)
            buffer.append(episode)
            if len(buffer) >= shard_episodes:
                flush()
    except BaseException:  # Ctrl-C, a failed worker: keep the episodes that did finish
        flush()
        raise
    finally:
        episodes.close()  # stop the environment workers now, not at garbage collection
    flush()
    return written[0], written[1]


@dataclass
class CollectRequest:
    """What ``driving collect`` runs; ``None`` settings on a resume are the dataset's.

    Attributes:
        out: the dataset folder.
        resume: finish an interrupted collection in ``out``.
        scenario: the scenario name (a new dataset: ``highway`` when None).
        agent: the acting agent spec (required for a new dataset).
        expert: the labelling agent spec (None: the acting agent).
        episodes: how many episodes.
        seeds: a training seed range ``"A:B"``.
        overrides: scenario overrides (None: none given).
        noise_steer: DART noise std on the executed steering (normalised units).
        noise_accel: DART noise std on the executed acceleration.
        workers: parallel environments.
        shard_episodes: episodes per shard.
        fast: the accelerated simulation (None: the project default).
        progress: show a progress bar.
        with_nuisance: allow a scenario whose overrides hold a sensor nuisance (refused
            otherwise, so corrupted pixels never reach training data unasked); the dataset's
            manifest records it with the scenario's overrides.
    """

    out: Path
    resume: bool = False
    scenario: str | None = None
    agent: str | None = None
    expert: str | None = None
    episodes: int | None = None
    seeds: str | None = None
    overrides: dict[str, Any] | None = None
    noise_steer: float | None = None
    noise_accel: float | None = None
    workers: int = 1
    shard_episodes: int = 8
    fast: bool | None = None
    progress: bool = True
    with_nuisance: bool = False


def _plan_new(args: CollectRequest) -> tuple[Scenario, list[int], dict[str, Any]]:
    """Check every setting of a new collection; return its scenario, seeds and settings."""
    if args.agent is None:
        raise UserError("give --agent (e.g. modular-oracle)")
    scenario = get_scenario(args.scenario or "highway").with_overrides(args.overrides or {})
    refuse_in_training(
        scenario.overrides, args.with_nuisance, "pass --with-nuisance if that is meant"
    )
    seeds = training_seeds(scenario, args.episodes, args.seeds)
    noise = DartNoise.from_settings(scenario.action, args.noise_steer or 0.0, args.noise_accel or 0)
    out = Path(args.out)
    if (out / MANIFEST).exists():
        raise UserError(f"--out {out} is already a dataset; add --resume to finish it")
    check_new_root(out)
    settings = {
        "agent": args.agent,
        "expert": args.expert or args.agent,
        "noise": noise.to_dict() if noise else None,
        "fast": args.fast,
    }
    return scenario, seeds, settings


def _resumed_writer(args: CollectRequest) -> tuple[DatasetWriter, dict[str, Any]]:
    """Reopen the dataset, refusing settings that contradict the recorded ones."""
    if not (args.out / MANIFEST).exists():
        raise UserError(f"--resume: {args.out} is not a dataset (no {MANIFEST})")
    writer = DatasetWriter.open(args.out)
    settings = writer.manifest["extra"].get("collect")
    if not isinstance(settings, dict):
        raise UserError(f"--resume: {args.out} was not written by driving collect")
    scenario = writer.scenario
    given: dict[str, Any] = {
        "--scenario": (args.scenario, scenario.name),
        "--agent": (args.agent, settings["agent"]),
        "--expert": (args.expert, settings["expert"]),
        "--fast": (args.fast, settings["fast"]),
    }
    if args.overrides is not None:
        given["--overrides"] = (
            get_scenario(scenario.name).with_overrides(args.overrides).overrides,
            scenario.overrides,
        )
    if args.episodes is not None or args.seeds is not None:
        given["--episodes/--seeds"] = (
            training_seeds(scenario, args.episodes, args.seeds),
            writer.requested_seeds(),
        )
    if args.noise_steer is not None or args.noise_accel is not None:
        noise = DartNoise.from_settings(
            scenario.action, args.noise_steer or 0.0, args.noise_accel or 0.0
        )
        given["--noise-steer/--noise-accel"] = (
            noise.to_dict() if noise else None,
            settings["noise"],
        )
    for flag, (value, recorded) in given.items():
        if value is not None and value != recorded:
            raise UserError(f"--resume: {flag} differs from the dataset's ({recorded!r})")
    return writer, settings


def _agents(settings: dict[str, Any], scenario: Scenario) -> tuple[Agent, Agent | None]:
    agent = make_agent(settings["agent"], scenario)
    if settings["expert"] == settings["agent"]:
        return agent, None
    return agent, make_agent(settings["expert"], scenario)


@dataclass(frozen=True)
class CollectResult:
    """What :func:`run_collection` did.

    Attributes:
        episodes, frames: written by this run.
        seconds: its wall time.
        total_episodes, total_frames: what the dataset holds now.
    """

    episodes: int
    frames: int
    seconds: float
    total_episodes: int
    total_frames: int


def run_collection(args: CollectRequest) -> CollectResult:
    """Create (or resume) the dataset and collect the seeds it still misses.

    Raises:
        UserError: a bad setting, or a resume whose settings contradict the dataset's.
        RunError: an environment worker failed (the finished episodes are kept).
    """
    if args.resume:
        writer, settings = _resumed_writer(args)
        if not writer.missing_seeds():
            counts = writer.manifest["counts"]
            return CollectResult(0, 0, 0.0, counts["episodes"], counts["frames"])
        agent, expert = _agents(settings, writer.scenario)
    else:
        scenario, seeds, settings = _plan_new(args)
        agent, expert = _agents(settings, scenario)
        description = {
            "agent": settings["agent"],
            "expert": settings["expert"],
            "agent_description": agent.describe(),
            "expert_description": (expert or agent).describe(),
        }
        writer = DatasetWriter.create(args.out, scenario, description, seeds, {"collect": settings})
    scenario = writer.scenario
    started = time.perf_counter()
    try:
        episodes, frames = collect(
            writer,
            agent,
            expert=expert,
            mixer=DartNoise.from_record(scenario.action, settings["noise"]),
            workers=args.workers,
            shard_episodes=args.shard_episodes,
            fast=settings["fast"],
            provenance={"agent": settings["agent"], "expert": settings["expert"]},
            progress=f"collect {settings['agent']}" if args.progress else False,
        )
    except WorkerFailure as exc:
        kept = writer.manifest["counts"]["episodes"]
        raise RunError(
            f"{exc}; the dataset keeps {kept} finished episodes; add --resume to collect the rest"
        ) from exc
    finally:
        for a in (agent, expert):
            if a is not None:
                a.close()
    counts = writer.manifest["counts"]
    return CollectResult(
        episodes, frames, time.perf_counter() - started, counts["episodes"], counts["frames"]
    )
