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
    out: runs/curve_highway       # the report and its ledger (OUT/points: kept points)
    store: runs/store             # datasets, trained points and evaluations, shared by recipes
    fresh: false                  # true: evaluate every checkpoint again (driving compare --fresh)
    time_limit: null              # minutes after which no new point is started (null: none)

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
point, expert, mixture, noise and budgets so far; a point is reused only once its ``done``
marker is written, and another recipe that shares points (more budgets, more seeds, another
series, a suite's CNN) reuses them without anyone copying a key. Each point is evaluated on the
held-out seeds as soon as it is trained, and the evaluation and the point's network are kept in
``OUT/points`` (:mod:`driving.train.ledger`), so a curve is built across sessions: commit
``OUT`` after a run (``--time-limit`` stops it cleanly between points), and the next run, on
this machine or a fresh one, starts where it stopped; a DAgger aggregate is driven again only
where a point not yet kept needs it. Points are built seed by seed (every series of training
seed 0 first), the reference agents (modular-oracle, modular-vision) before them. The report
covers what the ledger holds: the curve (the points of one series and budget pool their
training seeds' episodes), its table and the crossover with modular-vision, and names the points
not built yet.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from agents.registry import AgentSpec, make_agent
from driving.collection import collect
from driving.comparison import (
    AgentEntry,
    CompareConfig,
    ComparisonResult,
    evaluate_or_reuse,
    report_comparison,
)
from driving.configs import load_mapping, require_bools, require_positive_ints
from driving.dataset import DatasetWriter, read_manifest
from driving.eval_cache import code_digest
from driving.evaluation import Evaluation
from driving.files import atomic_append_text, atomic_write_text, check_output_location, copy_tree
from driving.mixers import DartNoise
from driving.seeds import DAGGER_FIRST_SEED, round_seeds
from driving.train.dagger import append_round, drive_round, round_beta
from driving.train.ledger import Ledger, LedgerEntry
from driving.train.store import (
    Store,
    demonstrations,
    demonstrations_key,
    load_train_config,
    merged,
    point_key,
    trained_point,
)
from envs.errors import UserError
from envs.nuisances import refuse_in_training
from envs.scenarios import Scenario, get_scenario

SERIES = ("BC", "DAgger", "DART")
"""The methods a curve can hold."""
REFERENCES = ("modular-oracle", "modular-vision")
"""The reference agents every curve is evaluated beside."""
LEDGER = "points"
"""The ledger's folder in ``out`` (:mod:`driving.train.ledger`)."""
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
    time_limit: float | None = None


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
    limit = config.time_limit
    if limit is not None and (
        not isinstance(limit, int | float) or isinstance(limit, bool) or limit <= 0
    ):
        raise UserError(
            f"config {path}: time_limit must be a positive number of minutes, got {limit!r}"
        )
    refuse_in_training(
        config.overrides if isinstance(config.overrides, dict) else {},
        False,
        "a curve trains and evaluates on one scenario: measure nuisances with a comparison's "
        "shifts",
    )
    return config


class _Build:
    """One run of a curve: every point and reference agent, kept in the ledger, found there or
    built (trained through the store, evaluated, kept) until the time limit."""

    def __init__(self, config: CurveConfig, command: str) -> None:
        self.config, self.command = config, command
        self.store = Store(Path(config.store))
        self.ledger = Ledger(Path(config.out) / LEDGER)
        self.scenario = get_scenario(config.scenario).with_overrides(config.overrides)
        self.seeds = self.scenario.evaluation_seeds.first(config.episodes)
        self.variant = f"main: {config.scenario}"
        self.base = merged(load_train_config(config.train_config), config.train_overrides)
        minutes = config.time_limit
        self.deadline = math.inf if minutes is None else time.perf_counter() + 60 * minutes
        self.results: list[ComparisonResult] = []
        self.agents: list[AgentEntry] = []
        self.missing: list[str] = []
        self.entries: list[LedgerEntry] = []

    def _key(self, what: dict[str, Any]) -> dict[str, Any]:
        return {**what, "scenario": self.scenario.to_dict(), "seeds": self.seeds}

    def _evaluate(self, spec: AgentSpec) -> Evaluation:
        evaluation = evaluate_or_reuse(
            spec,
            self.variant,
            self.scenario,
            self.seeds,
            self.store.evaluations,
            workers=self.config.workers,
            fresh=self.config.fresh,
        )
        assert evaluation is not None  # only pixels-only variants skip an agent
        return evaluation

    def _kept(self, key: dict[str, Any]) -> Evaluation | None:
        """The ledger's evaluation of ``key`` (None when it is not kept, or under ``fresh``)."""
        entry = None if self.config.fresh else self.ledger.entry(key)
        if entry is None:
            return None
        print(f"{self.ledger.folder(key)}: kept ({entry.date})")
        self.entries.append(entry)
        return self.ledger.evaluation(key)

    def reference(self, name: str) -> ComparisonResult:
        """A reference agent's evaluation (kept, or driven and kept)."""
        key = self._key({"agent": name})
        evaluation = self._kept(key)
        if evaluation is None:
            evaluation = self._evaluate(AgentSpec.parse(name))
            self.entries.append(self.ledger.record(key, evaluation, self.command))
        return ComparisonResult(self.variant, None, None, evaluation.summary, evaluation.rows)

    def point(
        self,
        series: Sequence[str],
        index: int,
        labels: int,
        seed: int,
        data_key: dict[str, Any],
        data: Callable[[], Path],
    ) -> Path | None:
        """The kept policy of the point trained on the first ``labels`` frames of the data that
        ``data_key`` names (``data()`` builds it), evaluated as curve point ``index`` of each
        of ``series``; None when it is not kept and the time limit has passed. Under ``fresh``
        a kept policy is evaluated again, not trained again."""
        names = self.scenario.action.names
        trained = point_key(self.base, names, data_key, labels, self.config.steps, seed)
        key = self._key({"point": trained})
        policy = self.ledger.policy(key)
        evaluation = self._kept(key)
        if evaluation is None:
            checkpoint = policy
            if not policy.is_file():
                if time.perf_counter() > self.deadline:
                    self.missing.append(f"{'/'.join(series)} {labels:,} labels, seed {seed}")
                    return None
                steps = self.config.steps
                checkpoint = trained_point(
                    self.store, self.base, data(), data_key, labels, steps, seed
                )
            evaluation = self._evaluate(AgentSpec("cnn", str(checkpoint)))
            if checkpoint != policy:
                self.ledger.keep_policy(key, checkpoint)
            self.entries.append(self.ledger.record(key, evaluation, self.command, labels, seed))
        for name in series:
            self.results.append(
                ComparisonResult(self.variant, name, index, evaluation.summary, evaluation.rows)
            )
            self.agents.append(AgentEntry(AgentSpec("cnn", str(policy)), name, index))
        return policy

    def demonstrations(self, noise: DartNoise | None) -> tuple[dict[str, Any], Callable[[], Path]]:
        """The key of the expert's demonstrations (with ``noise``) and a builder of them
        (collected on first use only: a run whose points are all kept collects nothing)."""
        config = self.config
        key = demonstrations_key(self.scenario, config.expert, noise)

        @cache
        def build() -> Path:
            return demonstrations(
                self.store, self.scenario, config.expert, noise, config.budgets[-1], config.workers
            )[0]

        return key, build

    def dagger(
        self, start: Path | None, start_key: dict[str, Any], demos: Callable[[], Path], seed: int
    ) -> None:
        """DAgger's points after the first (``start``, BC's; None: not built) for training
        seed ``seed`` (see the module docstring); an aggregate is driven only where a point
        that is not kept needs it."""
        config = self.config
        if start is None:
            self.missing += [f"DAgger {b:,} labels, seed {seed}" for b in config.budgets[1:]]
            return
        noise = DartNoise.from_settings(self.scenario.action, config.dagger_noise_steer, 0.0)
        chain = {
            "kind": "dagger",
            "start": start_key,
            "expert": config.dagger_expert,
            "beta0": config.beta0,
            "beta_decay": config.beta_decay,
            "noise": noise.to_dict() if noise else None,
        }
        policies = [start]

        @cache
        def aggregate(k: int) -> Path:
            if k == 0:
                return _demonstration_prefix(config, self.store, self.scenario, demos(), chain)
            folder = self.store.folder("dagger", {**chain, "budgets": config.budgets[: k + 1]})
            root = folder / "dataset"
            if not (folder / "done").exists():
                if not root.exists():
                    copy_tree(aggregate(k - 1), root)
                budget = config.budgets[k]
                _drive_until(config, self.scenario, root, policies[k - 1], k, budget, noise)
                atomic_write_text(folder / "done", f"round {k}: {budget} labels\n")
            return root

        for k, budget in enumerate(config.budgets[1:], start=1):
            key = {**chain, "budgets": config.budgets[: k + 1]}
            policy = self.point(["DAgger"], k, budget, seed, key, lambda k=k: aggregate(k))
            if policy is None:  # the rounds after it drive it
                self.missing += [
                    f"DAgger {b:,} labels, seed {seed}" for b in config.budgets[k + 1 :]
                ]
                return
            policies.append(policy)


def _ledger_lines(build: _Build) -> list[str]:
    """The report's account of its ledger: what is kept, with which code, what is missing."""
    stale = sum(entry.code != code_digest() for entry in build.entries)
    dates = sorted(entry.date for entry in build.entries)
    lines = [
        "## Ledger",
        "",
        f"{len(build.entries)} evaluations are kept in `{build.ledger.root}` (each a point's "
        f"network and its episodes, or a reference agent's episodes), measured from {dates[0]} "
        f"to {dates[-1]}; {stale} of them with other code than this run's (`--fresh` measures "
        "them again).",
    ]
    if build.missing:
        lines += [
            "",
            f"**Not built yet** (the time limit of {build.config.time_limit:g} min was reached; "
            f"the same command builds them): {'; '.join(build.missing)}.",
        ]
    return lines


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
    """Find kept or build every point and reference agent (see :class:`_Build`), seed by
    seed; write the report over those there are; return it."""
    started = time.perf_counter()
    out = Path(config.out)
    check_output_location(out, "out")
    build = _Build(config, command)
    references = [build.reference(name) for name in REFERENCES]
    clean_key, clean = build.demonstrations(None)
    dart = DartNoise.from_settings(build.scenario.action, config.dart_noise_steer, 0.0)
    noisy_key, noisy = build.demonstrations(dart)
    for seed in config.seeds:
        first = config.budgets[0]
        opening = [name for name in ("BC", "DAgger") if name in config.series]
        start = build.point(opening, 0, first, seed, clean_key, clean) if opening else None
        if "BC" in config.series:
            for i, budget in enumerate(config.budgets[1:], start=1):
                build.point(["BC"], i, budget, seed, clean_key, clean)
        if "DAgger" in config.series:
            start_key = {"data": clean_key, "labels": first, "seed": seed}
            build.dagger(start, start_key, clean, seed)
        if "DART" in config.series:
            for i, budget in enumerate(config.budgets):
                build.point(["DART"], i, budget, seed, noisy_key, noisy)
    compare = CompareConfig(
        agents=[*build.agents, *(AgentEntry(AgentSpec.parse(name)) for name in REFERENCES)],
        scenario=config.scenario,
        overrides=config.overrides,
        episodes=config.episodes,
        workers=config.workers,
        out=str(out),
        evaluations=str(build.store.evaluations),
        wandb=config.wandb,
        fresh=config.fresh,
        title=f"BC, DAgger and DART learning curves on {config.scenario}",
    )
    atomic_write_text(out / "compare.yaml", yaml.safe_dump(compare.to_dict(), sort_keys=False))
    report = report_comparison(compare, [*build.results, *references], command)
    minutes = (time.perf_counter() - started) / 60
    atomic_append_text(report, "\n".join(["", *_ledger_lines(build), ""]))
    atomic_append_text(
        report,
        f"\nThis run (the collection, training and evaluation it did not find done): "
        f"{minutes:.1f} min wall time.\n",
    )
    print(f"curve done in {minutes:.1f} min")
    return report
