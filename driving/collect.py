"""``driving collect``: record expert demonstrations into a dataset folder.

Episodes run through the one rollout loop (:func:`driving.rollout.iter_episodes`), in parallel
with ``--workers``; every ``--shard-episodes`` finished episodes are written as one shard of a
:mod:`driving.dataset` folder. The expert (by default the acting agent itself) labels every
frame with its clean action.

DART (Laskey et al. 2017, "DART: Noise Injection for Robust Imitation Learning"): with
``--noise-steer`` / ``--noise-accel`` Gaussian noise is added to the EXECUTED action, so the
car visits the states just off the expert's path, while the label stays the expert's clean
action. The noise of step ``t`` of episode ``seed`` is drawn from ``(seed, t)`` only, so the
dataset does not depend on the number of workers.

Training seeds only: a seed range that touches the validation or evaluation seeds is refused.
The seeds are fixed when the dataset is created; ``--resume`` collects the ones still missing
after an interruption, with the recorded settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent
from agents.registry import make_agent
from driving.argparse_util import (
    ArgumentParser,
    add_override_arguments,
    load_overrides,
    positive_int,
)
from driving.dataset import MANIFEST, DatasetWriter, check_new_root
from driving.rollout import ActionMixer, Episode, WorkerFailure, iter_episodes
from envs.errors import UserError
from envs.scenarios import SCENARIOS, Scenario, SeedRange, get_scenario
from envs.spec import ActionSpec

_NOISE_SALT = 0xDA27
"""Mixed into the noise seed so the noise stream is unrelated to the simulator's own."""


@dataclass(frozen=True)
class DartNoise:
    """An :data:`~driving.rollout.ActionMixer` adding Gaussian noise to the executed action.

    Args:
        names: the action components, e.g. ``("accel", "steer")``.
        std: standard deviation per component, in normalised action units (the rollout clips
            the result to [-1, 1]).
    """

    names: tuple[str, ...]
    std: tuple[float, ...]

    def __call__(
        self, seed: int, step: int, agent_action: np.ndarray, expert_action: np.ndarray | None
    ) -> np.ndarray:
        """``agent_action (A,) + N(0, std²)`` with the noise drawn from ``(seed, step)``."""
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings recorded in the manifest."""
        return {
            "kind": "dart-gaussian",
            "applied_to": "executed action; the label is the expert's clean action",
            "std": dict(zip(self.names, self.std, strict=True)),
            "random_stream": "numpy default_rng([0xDA27, episode seed, step])",
        }


def training_seeds(scenario: Scenario, episodes: int | None, seeds: str | None) -> list[int]:
    """The first ``episodes`` seeds of ``seeds`` (default range: the scenario's training seeds).

    Raises:
        UserError: neither is given, or the range reaches outside the training seeds.
    """
    if episodes is None and seeds is None:
        raise UserError("give --episodes N (and/or --seeds A:B)")
    seed_range = SeedRange.parse(seeds) if seeds else scenario.train_seeds
    for kind, held_out in (
        ("evaluation", scenario.evaluation_seeds),
        ("validation", scenario.validation_seeds),
    ):
        if seed_range.overlaps(held_out):
            raise UserError(
                f"seeds {seed_range} overlap the held-out {kind} seeds ({held_out}); "
                f"collect uses training seeds only ({scenario.train_seeds})"
            )
    train = scenario.train_seeds
    if not (train.start <= seed_range.start and seed_range.stop <= train.stop):
        raise UserError(
            f"seeds {seed_range} are outside the training seeds ({train}) of {scenario.name}"
        )
    return seed_range.first(episodes if episodes is not None else len(seed_range))


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


def build_parser() -> ArgumentParser:
    """The ``driving collect`` argument parser."""
    parser = ArgumentParser(
        prog="driving collect",
        description="Record demonstrations (frames + the expert's clean action labels) into a "
        "dataset folder, in parallel, optionally with DART noise on the executed action. "
        "Settings left out on --resume are taken from the dataset.",
    )
    parser.add_argument("--scenario", help=f"scenario name ({', '.join(SCENARIOS)}; highway)")
    parser.add_argument(
        "--agent", help="acting agent spec, e.g. modular-oracle, idm, cnn:PATH (required)"
    )
    parser.add_argument("--expert", help="labelling agent spec (default: the acting agent)")
    parser.add_argument("--episodes", type=positive_int, help="number of episodes")
    parser.add_argument(
        "--seeds", help="training seed range A:B (half-open); default: the scenario's train range"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="parallel environments (subprocesses)"
    )
    parser.add_argument("--out", required=True, type=Path, help="dataset folder")
    add_override_arguments(parser)
    parser.add_argument(
        "--noise-steer", type=_std, help="DART: std of Gaussian noise on the executed steering"
    )
    parser.add_argument(
        "--noise-accel", type=_std, help="DART: std of Gaussian noise on the executed accel"
    )
    parser.add_argument(
        "--shard-episodes", type=positive_int, default=8, help="episodes per shard (default 8)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="finish an interrupted collection in --out"
    )
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use the accelerated simulation (default: the project default)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _std(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _plan_new(args: argparse.Namespace) -> tuple[Scenario, list[int], dict[str, Any]]:
    """Check every setting of a new collection; return its scenario, seeds and settings."""
    if args.agent is None:
        raise UserError("give --agent (e.g. modular-oracle)")
    overrides = load_overrides(args.overrides, args.overrides_file)
    scenario = get_scenario(args.scenario or "highway").with_overrides(overrides)
    seeds = training_seeds(scenario, args.episodes, args.seeds)
    noise = DartNoise.from_settings(scenario.action, args.noise_steer or 0.0, args.noise_accel or 0)
    out: Path = args.out
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


def _resumed_writer(args: argparse.Namespace) -> tuple[DatasetWriter, dict[str, Any]]:
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
    if args.overrides is not None or args.overrides_file:
        given["--overrides"] = (
            get_scenario(scenario.name)
            .with_overrides(load_overrides(args.overrides, args.overrides_file))
            .overrides,
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


def _mixer(settings: dict[str, Any], scenario: Scenario) -> DartNoise | None:
    noise = settings["noise"]
    if noise is None:
        return None
    std = noise["std"]
    return DartNoise(tuple(scenario.action.names), tuple(std[n] for n in scenario.action.names))


def main(argv: Sequence[str] | None = None) -> int:
    """``driving collect``: returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.resume:
        writer, settings = _resumed_writer(args)
        if not writer.missing_seeds():
            print(f"{args.out}: all {len(writer.requested_seeds())} episodes already collected")
            return 0
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
            mixer=_mixer(settings, scenario),
            workers=args.workers,
            shard_episodes=args.shard_episodes,
            fast=settings["fast"],
            provenance={"agent": settings["agent"], "expert": settings["expert"]},
            progress=False if args.quiet else f"collect {settings['agent']}",
        )
    except WorkerFailure as exc:
        counts = writer.manifest["counts"]
        print(
            f"driving collect: error: {exc}; the dataset keeps {counts['episodes']} finished "
            f"episodes; add --resume to collect the rest",
            file=sys.stderr,
        )
        return 1
    finally:
        for a in (agent, expert):
            if a is not None:
                a.close()
    elapsed = time.perf_counter() - started
    counts = writer.manifest["counts"]
    print(
        f"wrote {episodes} episodes ({frames} frames, {frames / max(elapsed, 1e-9):.0f} frames/s "
        f"with {args.workers} worker(s)) to {args.out}; dataset: {counts['episodes']} episodes, "
        f"{counts['frames']} frames"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
