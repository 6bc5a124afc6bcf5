"""Learning curves of BC, DAgger and DART-BC against expert labels (``driving curve``).

Reads a YAML recipe (see ``experiments/curve_highway.yaml``)::

    scenario: highway
    overrides: {}                 # scenario overrides for collection, training and evaluation
    train_config: experiments/bc_cpu_small.yaml   # the LightningCLI config every point shares
    train_overrides: {}           # merged over it, e.g. {model: {network: {width: 1.0}}}
    expert: modular-oracle        # drives and labels the demonstrations
    dagger_expert: modular-oracle:nearest-lane   # labels DAgger's frames (see driving.train.dagger)
    budgets: [1000, 3000, 10000]  # expert labels of each point, increasing (log-spaced)
    steps: 2000                   # gradient steps of every point (the one training rule)
    seeds: [0]                    # training seeds: every point is trained once per seed
    series: [BC, DAgger, DART]    # which methods
    dart_noise_steer: 0.02        # DART: BC on demonstrations with this steering noise
    beta0: 0.5                    # DAgger's expert-execution probability at its first round
    beta_decay: 0.5
    dagger_noise_steer: 0.0       # DART noise on DAgger rounds' executed steering (clean labels)
    episodes: 100                 # held-out evaluation episodes per checkpoint
    workers: 2
    out: runs/curve_highway       # the report
    store: runs/store             # datasets, trained points and evaluations, shared by recipes
    fresh: false                  # true: evaluate every checkpoint again (driving compare --fresh)

The training rule (issue 21): every point of every method is trained FROM SCRATCH for the
same ``steps`` gradient steps (the train config's batch size, optimiser and schedule, the
schedule counted in steps), on exactly its budget of expert-labelled frames (``max_frames``:
the first frames in the canonical (seed, step) order), with no validation split and no model
selection (the last checkpoint counts), so no method spends labels or compute another does not.

- **BC** (series ``BC``): demonstrations of ``expert`` on the training seeds in order; the point
  of budget ``B`` trains on their first ``B`` frames.
- **DART** (series ``DART``; Laskey et al. 2017): the same with the demonstrations' executed
  steering perturbed by ``dart_noise_steer`` (labels stay clean).
- **DAgger** (series ``DAgger``; Ross et al. 2011): starts from BC's point of the smallest
  budget. Round ``k`` lets point ``k - 1``'s policy drive new training seeds (mixed with the
  expert at rate ``beta0 * beta_decay ** (k - 1)``, steering perturbed by
  ``dagger_noise_steer``) until the aggregate (the demonstration episodes behind the first
  budget, then every round) holds ``budgets[k]`` frames; ``dagger_expert`` labels every frame;
  point ``k`` is trained from scratch on the first ``budgets[k]`` frames of the aggregate.

Everything expensive lives in ``store`` (:mod:`driving.train.store`, shared with ``driving
suite``): demonstrations, trained points, and here the DAgger aggregates, keyed by their first
point, expert, mixture, noise and budgets so far. So a curve is resumable point by point (a
point is reused only once its ``done`` marker is written), and another recipe that shares
points (more budgets, more seeds, another series, a suite's CNN) reuses them without anyone
copying a key. Finally ``driving compare`` evaluates every point and the modular agents on the
same held-out seeds: ``report.md`` with the curve (the points of one series and budget pool their
training seeds' episodes), its table and the crossover with modular-vision.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.registry import AgentSpec, make_agent
from driving.collection import collect
from driving.comparison import AgentEntry, CompareConfig, run_compare
from driving.configs import load_mapping, require_bools, require_positive_ints
from driving.dataset import DatasetWriter, read_manifest
from driving.files import atomic_append_text, atomic_write_text, copy_tree
from driving.mixers import DartNoise
from driving.seeds import DAGGER_FIRST_SEED, round_seeds
from driving.train.dagger import append_round, drive_round, round_beta
from driving.train.store import (
    Store,
    demonstrations,
    load_train_config,
    merged,
    trained_point,
)
from envs.errors import UserError
from envs.nuisances import refuse_in_training
from envs.scenarios import Scenario, get_scenario

SERIES = ("BC", "DAgger", "DART")
"""The methods a curve can hold."""
ROUND_STRIDE = 5_000
"""Training seeds set aside per DAgger round (round ``k`` draws from
``DAGGER_FIRST_SEED + (k - 1) * ROUND_STRIDE`` on, as many as its budget needs)."""


@dataclass
class CurveConfig:
    """What ``driving curve`` runs (see the module docstring for each key)."""

    scenario: str = "highway"
    overrides: dict[str, Any] = field(default_factory=dict)
    train_config: str = "experiments/bc_cpu_small.yaml"
    train_overrides: dict[str, Any] = field(default_factory=dict)
    expert: str = "modular-oracle"
    dagger_expert: str = "modular-oracle:nearest-lane"
    budgets: list[int] = field(default_factory=lambda: [1000, 3000, 10000])
    steps: int = 2000
    seeds: list[int] = field(default_factory=lambda: [0])
    series: list[str] = field(default_factory=lambda: ["BC", "DAgger"])
    dart_noise_steer: float = 0.02
    beta0: float = 0.5
    beta_decay: float = 0.5
    dagger_noise_steer: float = 0.0
    episodes: int = 100
    workers: int = 2
    out: str = "runs/curve_highway"
    store: str = "runs/store"
    wandb: bool = False
    fresh: bool = False


def _distinct_ints(value: Any, minimum: int) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)
        and len(set(value)) == len(value)
    )


def load_curve_config(path: Path) -> CurveConfig:
    """Parse a curve recipe (a :class:`UserError` names the file and the bad key)."""
    config = CurveConfig(**load_mapping(path, CurveConfig))
    require_bools(config, path, ("wandb", "fresh"))
    for name in ("dart_noise_steer", "dagger_noise_steer"):
        std = getattr(config, name)
        if not isinstance(std, int | float) or isinstance(std, bool) or not 0 <= std < 1:
            raise UserError(f"config {path}: {name} must be a number in [0, 1), got {std!r}")
    if not _distinct_ints(config.seeds, 0):
        raise UserError(
            f"config {path}: seeds must be a non-empty list of distinct non-negative integers, "
            f"got {config.seeds!r}"
        )
    if not _distinct_ints(config.budgets, 1) or config.budgets != sorted(config.budgets):
        raise UserError(
            f"config {path}: budgets must be a non-empty increasing list of positive integers "
            f"(expert labels), got {config.budgets!r}"
        )
    if (
        not isinstance(config.series, list)
        or not config.series
        or any(s not in SERIES for s in config.series)
        or len(set(config.series)) != len(config.series)
    ):
        raise UserError(
            f"config {path}: series must be a non-empty list of distinct names among "
            f"{list(SERIES)}, got {config.series!r}"
        )
    if not isinstance(config.train_overrides, dict):
        raise UserError(f"config {path}: train_overrides must be a mapping")
    for name in ("out", "store"):
        if not isinstance(getattr(config, name), str) or not getattr(config, name):
            raise UserError(f"config {path}: {name} must be a folder path")
    require_positive_ints(config, path, ["steps", "episodes", "workers"])
    refuse_in_training(
        config.overrides if isinstance(config.overrides, dict) else {},
        False,
        "a curve trains and evaluates on one scenario: measure nuisances with a comparison's "
        "shifts",
    )
    return config


def _dagger_chain(
    config: CurveConfig,
    store: Store,
    base: dict[str, Any],
    scenario: Scenario,
    demos: Path,
    start: Path,
    start_key: dict[str, Any],
    seed: int,
) -> list[Path]:
    """DAgger's points for training seed ``seed`` (see the module docstring): the checkpoint
    of every budget after the first, the first being ``start`` (BC's)."""
    noise = DartNoise.from_settings(scenario.action, config.dagger_noise_steer, 0.0)
    chain = {
        "kind": "dagger",
        "start": start_key,
        "expert": config.dagger_expert,
        "beta0": config.beta0,
        "beta_decay": config.beta_decay,
        "noise": noise.to_dict() if noise else None,
    }
    first = _demonstration_prefix(config, store, scenario, demos, chain)
    checkpoints, previous, data = [], start, first
    for k, budget in enumerate(config.budgets[1:], start=1):
        key = {**chain, "budgets": config.budgets[: k + 1]}
        folder = store.folder("dagger", key)
        aggregate = folder / "dataset"
        if not (folder / "done").exists():
            if not aggregate.exists():
                copy_tree(data, aggregate)
            _drive_until(config, scenario, aggregate, previous, k, budget, noise)
            atomic_write_text(folder / "done", f"round {k}: {budget} labels\n")
        previous = trained_point(store, base, aggregate, key, budget, config.steps, seed)
        checkpoints.append(previous)
        data = aggregate
    return checkpoints


def _demonstration_prefix(
    config: CurveConfig, store: Store, scenario: Scenario, demos: Path, chain: dict[str, Any]
) -> Path:
    """A dataset of the demonstration episodes behind the first budget (whole episodes, driven
    again: each is fixed by its seed), where a DAgger aggregate starts."""
    key = {**chain, "budgets": config.budgets[:1]}
    folder = store.folder("dagger", key)
    root = folder / "dataset"
    if (folder / "done").exists():
        return root
    manifest = read_manifest(demos)
    seeds, frames = [], 0
    for record in sorted(manifest["episodes"], key=lambda r: r["seed"]):
        if frames >= config.budgets[0]:
            break
        seeds.append(int(record["seed"]))
        frames += int(record["steps"])
    if not (root / "manifest.json").exists():
        description = {"agent": config.expert, "expert": config.expert, "curve": True}
        DatasetWriter.create(root, scenario, description, seeds, {"noise": None})
    writer = DatasetWriter.open(root)
    collect(writer, make_agent(config.expert, scenario), workers=config.workers)
    del writer
    atomic_write_text(folder / "done", f"{len(seeds)} demonstration episodes\n")
    return root


def _drive_until(
    config: CurveConfig,
    scenario: Scenario,
    aggregate: Path,
    policy: Path,
    round_: int,
    budget: int,
    noise: DartNoise | None,
) -> None:
    """Let ``policy`` drive round ``round_`` on new training seeds until ``aggregate`` holds
    ``budget`` frames, each labelled by the DAgger expert (resumable: seeds done are kept)."""
    beta = round_beta(config.beta0, config.beta_decay, round_)
    pool = round_seeds(scenario.train_seeds, DAGGER_FIRST_SEED, ROUND_STRIDE, round_)
    while True:
        manifest = read_manifest(aggregate)
        frames = int(manifest["counts"]["frames"])
        if frames >= budget:
            return
        done = set(manifest["seeds"]["done"])
        fresh = [s for s in pool if s not in done]
        per_episode = scenario.steps_per_episode / 2  # a policy may end episodes early
        todo = fresh[: math.ceil((budget - frames) / per_episode)]
        if not todo:
            raise UserError(f"DAgger round {round_} ran out of its {ROUND_STRIDE} seeds")
        episodes = drive_round(
            make_agent(AgentSpec("cnn", str(policy)), scenario),
            scenario,
            todo,
            round_=round_,
            beta=beta,
            expert=config.dagger_expert,
            workers=config.workers,
            noise=noise,
        )
        append_round(
            aggregate, [episodes], round_=round_, beta=beta, policy_path=policy, noise=noise
        )


def run_curve(config: CurveConfig, command: str) -> Path:
    """Collect, train every method's points, evaluate every checkpoint; return the report."""
    started = time.perf_counter()
    out, store = Path(config.out), Store(Path(config.store))
    scenario = get_scenario(config.scenario).with_overrides(config.overrides)
    base = merged(load_train_config(config.train_config), config.train_overrides)
    clean = demonstrations(store, scenario, config.expert, None, config.budgets[-1], config.workers)
    entries: list[AgentEntry] = []

    def add(series: str, checkpoints: list[Path], first: int = 0) -> None:
        entries.extend(
            AgentEntry(AgentSpec("cnn", str(ckpt)), series, first + i)
            for i, ckpt in enumerate(checkpoints)
        )

    for seed in config.seeds:
        bc = [
            trained_point(store, base, clean[0], clean[1], b, config.steps, seed)
            for b in (config.budgets if "BC" in config.series else config.budgets[:1])
        ]
        if "BC" in config.series:
            add("BC", bc)
        if "DAgger" in config.series:
            start_key = {"data": clean[1], "labels": config.budgets[0], "seed": seed}
            chain = _dagger_chain(config, store, base, scenario, clean[0], bc[0], start_key, seed)
            add("DAgger", [bc[0], *chain])
    if "DART" in config.series:
        noise = DartNoise.from_settings(scenario.action, config.dart_noise_steer, 0.0)
        noisy = demonstrations(
            store, scenario, config.expert, noise, config.budgets[-1], config.workers
        )
        for seed in config.seeds:
            add(
                "DART",
                [
                    trained_point(store, base, noisy[0], noisy[1], b, config.steps, seed)
                    for b in config.budgets
                ],
            )
    compare = CompareConfig(
        agents=[
            *entries,
            AgentEntry(AgentSpec("modular-oracle")),
            AgentEntry(AgentSpec("modular-vision")),
        ],
        scenario=config.scenario,
        overrides=config.overrides,
        episodes=config.episodes,
        workers=config.workers,
        out=str(out),
        evaluations=str(store.evaluations),
        wandb=config.wandb,
        fresh=config.fresh,
        title=f"BC, DAgger and DART learning curves on {config.scenario}",
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.yaml", yaml.safe_dump(compare.to_dict(), sort_keys=False))
    report = run_compare(compare, command)
    minutes = (time.perf_counter() - started) / 60
    atomic_append_text(
        report,
        f"\nThis run (the collection, training and evaluation it did not find done): "
        f"{minutes:.1f} min wall time.\n",
    )
    print(f"curve done in {minutes:.1f} min")
    return report
