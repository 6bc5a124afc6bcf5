"""Closed-loop evaluation of one agent with honest statistics.

:func:`evaluate_agent` drives the agent on the given seeds (held-out ones, see
:mod:`driving.seeds`) and aggregates every metric of :mod:`driving.metrics` with its mean, 95%
interval and episode count; :func:`write_evaluation` writes ``episodes.csv`` (one row per
episode) and ``summary.json`` (:class:`EvaluationSummary`: the aggregates plus agent, scenario,
overrides, seeds and versions).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

from agents.base import Agent
from agents.registry import make_agent
from driving.files import atomic_write
from driving.metrics import METRICS, episode_metrics
from driving.rollout import iter_episodes
from driving.seeds import evaluation_seeds, touches_training
from driving.stats import Stat, format_ci, summarize_kind
from driving.versions import package_versions
from envs.errors import UserError
from envs.scenarios import Scenario, get_scenario


@dataclass
class EvaluationSummary:
    """What ``summary.json`` holds: one agent's aggregates on one scenario's seeds.

    Attributes:
        agent: the agent spec it was built from (e.g. ``"cnn:runs/bc/best.ckpt"``).
        agent_description: the agent's :meth:`~agents.base.Agent.describe` (a CNN's
            checkpoint facts: training frames, expert labels, ...).
        parameters: the agent's learned parameters (0 for hand-designed agents).
        scenario: the scenario's record (:meth:`~envs.scenarios.Scenario.to_dict`).
        overrides: the scenario overrides.
        seeds: the episode seeds, in order.
        episodes: how many episodes.
        workers: parallel environments used.
        wall_time_s: seconds the evaluation took.
        metrics: metric name -> :class:`~driving.stats.Stat` over the episodes.
        versions: package versions.
        date: ISO 8601 UTC time of the evaluation.
    """

    agent: str
    agent_description: dict[str, Any]
    parameters: int
    scenario: dict[str, Any]
    overrides: dict[str, Any]
    seeds: list[int]
    episodes: int
    workers: int
    wall_time_s: float
    metrics: dict[str, Stat]
    versions: dict[str, str]
    date: str

    @property
    def scenario_name(self) -> str:
        return str(self.scenario["name"])

    @property
    def expert_labels(self) -> int:
        """Expert-labelled frames the agent learned from (0 for hand-designed agents)."""
        return int(self.agent_description.get("expert_labels") or 0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``summary.json``."""
        data = asdict(self)
        data["metrics"] = {name: stat.to_dict() for name, stat in self.metrics.items()}
        return json.loads(json.dumps(data, default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationSummary:
        """Read :meth:`to_dict`'s form (a stored ``summary.json``)."""
        values = {f.name: data[f.name] for f in fields(cls)}
        values["metrics"] = {name: Stat.from_dict(s) for name, s in data["metrics"].items()}
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> EvaluationSummary:
        """The summary stored at ``path`` (a ``summary.json``)."""
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class Evaluation:
    """The outcome of evaluating one agent.

    Attributes:
        rows: one dict of :func:`~driving.metrics.episode_metrics` per episode, in seed order.
        summary: the aggregates.
    """

    rows: list[dict[str, float]]
    summary: EvaluationSummary


def evaluate_agent(
    agent: Agent,
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    workers: int = 1,
    fast: bool | None = None,
    progress: bool | str = True,
) -> Evaluation:
    """Drive ``agent`` on ``seeds`` and aggregate the metrics with 95% intervals."""
    started = time.perf_counter()
    episodes = iter_episodes(agent, scenario, seeds, workers=workers, fast=fast, progress=progress)
    by_seed = {ep.seed: episode_metrics(ep) for ep in episodes}
    rows = [by_seed[s] for s in seeds]
    wall = time.perf_counter() - started
    metrics = {
        name: summarize_kind([row[name] for row in rows], kind)
        for name, (_, kind) in METRICS.items()
    }
    summary = EvaluationSummary(
        agent=agent.name,
        agent_description=agent.describe(),
        parameters=agent.parameters,
        scenario=scenario.to_dict(),
        overrides=scenario.overrides,
        seeds=list(seeds),
        episodes=len(rows),
        workers=workers,
        wall_time_s=wall,
        metrics=metrics,
        versions=package_versions(),
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    return Evaluation(rows=rows, summary=summary)


def write_evaluation(evaluation: Evaluation, out: Path) -> None:
    """Write ``episodes.csv`` and ``summary.json`` into ``out`` (each atomically)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    columns = list(evaluation.rows[0]) if evaluation.rows else ["seed"]
    atomic_write(out / "episodes.csv", lambda fh: _write_csv(fh, columns, evaluation.rows))
    summary = evaluation.summary.to_dict()
    atomic_write(out / "summary.json", lambda fh: json.dump(summary, fh, indent=2))


def read_rows(folder: Path) -> list[dict[str, float]]:
    """The per-episode rows that :func:`write_evaluation` stored in ``folder`` (``episodes.csv``),
    in seed order, every value a float."""
    with open(Path(folder) / "episodes.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _write_csv(fh: IO[str], columns: list[str], rows: list[dict[str, float]]) -> None:
    writer = csv.DictWriter(fh, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


def print_summary(summary: EvaluationSummary, file: IO[str] = sys.stdout) -> None:
    """Print the aggregate table of one evaluation."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=(
            f"{summary.agent} on {summary.scenario_name}: "
            f"{summary.episodes} episodes, mean [95% CI]"
        )
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("n", justify="right")
    for name, stat in summary.metrics.items():
        table.add_row(name, format_ci(stat, 2 if METRICS[name][1] == "mean" else 3), str(stat.n))
    Console(file=file, width=100).print(table)


@dataclass
class EvaluationRequest:
    """What ``driving evaluate`` runs.

    Attributes:
        agent: the agent spec.
        scenario: the scenario name.
        overrides: its overrides.
        episodes: how many episodes (None: all of ``seeds``).
        seeds: a seed range ``"A:B"`` (None: the held-out evaluation range).
        workers: parallel environments.
        fast: the accelerated simulation (None: the project default).
        out: the output folder.
        progress: show a progress bar.
    """

    agent: str
    scenario: str = "highway"
    overrides: dict[str, Any] | None = None
    episodes: int | None = None
    seeds: str | None = None
    workers: int = 1
    fast: bool | None = None
    out: Path = Path("runs/evaluate")
    progress: bool = True


def run_evaluation(request: EvaluationRequest, file: IO[str] = sys.stdout) -> int:
    """Evaluate, write the folder, print the table; return the exit status."""
    scenario = get_scenario(request.scenario).with_overrides(request.overrides or {})
    seeds = evaluation_seeds(scenario, request.episodes, request.seeds)
    if touches_training(scenario, seeds):
        print(
            "driving evaluate: warning: these seeds overlap the training range; "
            "the results are not held-out",
            file=sys.stderr,
        )
    out = Path(request.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    agent = make_agent(request.agent, scenario)
    try:
        evaluation = evaluate_agent(
            agent,
            scenario,
            seeds,
            workers=request.workers,
            fast=request.fast,
            progress=f"evaluate {request.agent}" if request.progress else False,
        )
    finally:
        agent.close()
    write_evaluation(evaluation, out)
    print_summary(evaluation.summary, file)
    print(
        f"wrote {out / 'episodes.csv'} and {out / 'summary.json'} "
        f"({evaluation.summary.wall_time_s:.1f} s)",
        file=file,
    )
    return 0
