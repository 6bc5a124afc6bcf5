"""Closed-loop evaluation of one agent with honest statistics.

:func:`evaluate_agent` drives the agent on the given seeds (held-out ones, see
:mod:`driving.seeds`) and aggregates every metric of :mod:`driving.metrics` with its mean, 95%
interval and episode count; :func:`write_evaluation` writes ``episodes.csv`` (one row per
episode) and ``summary.json`` (:class:`EvaluationSummary`: the aggregates plus agent, scenario,
overrides, seeds and versions).

``driving evaluate`` (:func:`run_evaluation`) writes its folder as it drives
(:class:`EvaluationFolder`), so an interrupted evaluation keeps every episode it finished and
the same command resumes it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

from agents.base import Agent
from agents.registry import AgentSpec, make_agent
from driving.files import (
    append_line,
    atomic_write,
    check_output_location,
    file_sha256,
    hold_lock,
)
from driving.metrics import METRICS, episode_metrics
from driving.rollout import iter_episodes
from driving.seeds import evaluation_seeds, touches_training
from driving.stats import Stat, format_ci, summarize_kind
from driving.versions import package_versions
from envs.errors import UserError
from envs.scenarios import Scenario, get_scenario

EPISODES = "episodes.csv"
SUMMARY = "summary.json"
IDENTITY = "evaluation.json"
ROWS = "rows.jsonl"
LOCK = "evaluate.lock"


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
    done: Sequence[dict[str, float]] = (),
    on_row: Callable[[dict[str, float]], None] | None = None,
) -> Evaluation:
    """Drive ``agent`` on ``seeds`` and aggregate the metrics with 95% intervals.

    Args:
        done: rows of episodes already driven (an interrupted run's); their seeds are not
            driven again.
        on_row: called with each new row as its episode finishes (to keep it at once).
    """
    started = time.perf_counter()
    by_seed = {int(row["seed"]): row for row in done}
    todo = [s for s in seeds if s not in by_seed]
    episodes = iter_episodes(agent, scenario, todo, workers=workers, fast=fast, progress=progress)
    try:
        for episode in episodes:
            row = episode_metrics(episode)
            if on_row is not None:
                on_row(row)
            by_seed[episode.seed] = row
    finally:
        episodes.close()  # stop the environment workers now, not at garbage collection
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
    atomic_write(out / EPISODES, lambda fh: _write_csv(fh, columns, evaluation.rows))
    summary = evaluation.summary.to_dict()
    atomic_write(out / SUMMARY, lambda fh: json.dump(summary, fh, indent=2))


def evaluation_identity(
    spec: str, scenario: Scenario, seeds: Sequence[int], fast: bool | None
) -> dict[str, Any]:
    """What decides an evaluation's rows, as stored in its folder's ``evaluation.json``: the
    agent spec (and a ``cnn:`` checkpoint's SHA-256), the scenario record (config and
    overrides), the seeds and the simulation kind. A folder is resumed only by an evaluation
    with the same identity."""
    parsed = AgentSpec.parse(spec)
    checkpoint = parsed.checkpoint
    identity = {
        "agent": str(parsed),
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None,
        "scenario": scenario.to_dict(),
        "seeds": [int(s) for s in seeds],
        "fast": fast,
    }
    return json.loads(json.dumps(identity, default=str))


class EvaluationFolder:
    """The output folder of ``driving evaluate``, written as the episodes finish.

    Layout::

        OUT/
          evaluate.lock     empty; the writer holds an flock on it (one writer at a time)
          evaluation.json   the identity (:func:`evaluation_identity`), written first
          rows.jsonl        one JSON row per finished episode, in the order they finish,
                            appended and fsynced as each ends (removed once complete)
          episodes.csv      every row in seed order   } written atomically at the end
          summary.json      the aggregates            }

    A folder holding the same evaluation's rows is resumed (its seeds are not driven again; the
    rows come out identical to an uninterrupted run's, timings aside); one holding another
    evaluation is refused unless ``overwrite``. Use :meth:`open`; it is a context manager that
    releases the lock.

    Attributes:
        out: the folder.
        rows: the rows already driven (resumed), in the order they were written.
        complete: the folder already holds this evaluation, finished.
    """

    def __init__(self, out: Path, lock: IO[bytes], rows: list[dict[str, float]], complete: bool):
        self.out = out
        self.rows = rows
        self.complete = complete
        self._lock = lock
        self._rows_file: IO[str] | None = None

    @classmethod
    def open(
        cls, out: Path, identity: dict[str, Any], *, overwrite: bool = False
    ) -> EvaluationFolder:
        """Check, lock and prepare ``out`` for the evaluation ``identity`` (before driving).

        Raises:
            UserError: ``out`` cannot be written, is a file, is being written by another
                process, or holds another evaluation (and not ``overwrite``).
        """
        out = Path(out)
        check_output_location(out, "--out")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        lock = hold_lock(out / LOCK, f"--out {out} is being written by another driving evaluate")
        try:
            ours = (EPISODES, SUMMARY, IDENTITY, ROWS)
            held = any((out / name).exists() for name in ours)
            if held and (overwrite or _stored_identity(out) != identity):
                if not overwrite:
                    raise UserError(
                        f"--out {out} holds another evaluation; pick another folder or add "
                        "--overwrite to replace it"
                    )
                for name in ours:
                    (out / name).unlink(missing_ok=True)
            if not (out / IDENTITY).exists():
                atomic_write(out / IDENTITY, lambda fh: json.dump(identity, fh, indent=1))
            complete = (out / SUMMARY).exists() and not (out / ROWS).exists()
            rows = [] if complete else _read_jsonl_rows(out / ROWS)
        except BaseException:
            lock.close()
            raise
        return cls(out, lock, rows, complete)

    def __enter__(self) -> EvaluationFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, row: dict[str, float]) -> None:
        """Keep ``row`` (one finished episode) on disk now."""
        if self._rows_file is None:
            self._rows_file = open(self.out / ROWS, "a")  # noqa: SIM115 (closed by close())
        append_line(self._rows_file, json.dumps(row))

    def finish(self, evaluation: Evaluation) -> None:
        """Write ``episodes.csv`` and ``summary.json``; the partial rows are then dropped."""
        write_evaluation(evaluation, self.out)
        self._close_rows()
        (self.out / ROWS).unlink(missing_ok=True)
        self.complete = True

    def close(self) -> None:
        """Release the folder (the rows written so far stay)."""
        self._close_rows()
        self._lock.close()

    def _close_rows(self) -> None:
        if self._rows_file is not None:
            self._rows_file.close()
            self._rows_file = None


def _stored_identity(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / IDENTITY).read_text())
    except (OSError, ValueError):
        return None


def _read_jsonl_rows(path: Path) -> list[dict[str, float]]:
    """The rows of ``rows.jsonl``; a last line cut short by a kill is dropped (and cut off)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "rb+") as fh:
            fh.truncate(len(complete))
            os.fsync(fh.fileno())
    rows = []
    for number, line in enumerate(complete.decode().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise UserError(
                f"{path} line {number} is damaged; add --overwrite to start again"
            ) from None
    return rows


def read_rows(folder: Path) -> list[dict[str, float]]:
    """The per-episode rows that :func:`write_evaluation` stored in ``folder`` (``episodes.csv``),
    in seed order, every value a float."""
    with open(Path(folder) / EPISODES, newline="") as fh:
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
        overwrite: replace a folder that holds another evaluation.
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
    overwrite: bool = False


def run_evaluation(request: EvaluationRequest, file: IO[str] = sys.stdout) -> int:
    """Evaluate into the folder as episodes finish (resuming the same evaluation's rows), print
    the table; return the exit status."""
    scenario = get_scenario(request.scenario).with_overrides(request.overrides or {})
    seeds = evaluation_seeds(scenario, request.episodes, request.seeds)
    if touches_training(scenario, seeds):
        print(
            "driving evaluate: warning: these seeds overlap the training range; "
            "the results are not held-out",
            file=sys.stderr,
        )
    out = Path(request.out)
    check_output_location(out, "--out")
    agent = make_agent(request.agent, scenario)
    try:
        identity = evaluation_identity(request.agent, scenario, seeds, request.fast)
        with EvaluationFolder.open(out, identity, overwrite=request.overwrite) as folder:
            if folder.complete:
                summary = EvaluationSummary.read(out / SUMMARY)
                print_summary(summary, file)
                print(f"{out} already holds this evaluation (add --overwrite to drive it again)")
                return 0
            if folder.rows:
                kept = len(folder.rows)
                print(f"resuming {out}: {kept} of {len(seeds)} episodes kept", file=file)
            evaluation = evaluate_agent(
                agent,
                scenario,
                seeds,
                workers=request.workers,
                fast=request.fast,
                progress=f"evaluate {request.agent}" if request.progress else False,
                done=folder.rows,
                on_row=folder.add,
            )
            folder.finish(evaluation)
    finally:
        agent.close()
    print_summary(evaluation.summary, file)
    print(
        f"wrote {out / EPISODES} and {out / SUMMARY} ({evaluation.summary.wall_time_s:.1f} s)",
        file=file,
    )
    return 0
