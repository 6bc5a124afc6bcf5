"""``driving evaluate``: closed-loop evaluation of one agent with honest statistics.

Drives the agent on held-out seeds (the scenario's evaluation range unless ``--seeds`` says
otherwise), writes ``episodes.csv`` (one row per episode) and ``summary.json`` (every metric
with its mean, 95% interval and episode count, plus agent, scenario, overrides, seeds and
versions), and prints the aggregate table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import Agent
from agents.registry import make_agent
from driving.argparse_util import (
    ArgumentParser,
    add_episode_arguments,
    add_override_arguments,
    load_overrides,
)
from driving.metrics import METRICS, episode_metrics
from driving.rollout import iter_episodes
from driving.stats import summarize
from driving.versions import package_versions
from envs.errors import UserError
from envs.scenarios import Scenario, SeedRange, get_scenario


@dataclass
class Evaluation:
    """The outcome of evaluating one agent.

    Attributes:
        rows: one dict of :func:`~driving.metrics.episode_metrics` per episode, in seed order.
        summary: the JSON-ready summary (``metrics`` maps each metric to mean/ci95/n).
    """

    rows: list[dict[str, float]]
    summary: dict[str, Any]


def choose_seeds(scenario: Scenario, episodes: int | None, seeds: str | None) -> list[int]:
    """The episode seeds: the first ``episodes`` of ``seeds`` (default: the evaluation range)."""
    seed_range = SeedRange.parse(seeds) if seeds else scenario.evaluation_seeds
    n = episodes if episodes is not None else len(seed_range)
    if seeds is None and episodes is None:
        raise UserError("give --episodes N (and/or --seeds A:B)")
    return seed_range.first(n)


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
        name: summarize([row[name] for row in rows], rate=is_rate)
        for name, (_, is_rate) in METRICS.items()
    }
    summary = {
        "agent": agent.name,
        "agent_description": agent.describe(),
        "parameters": agent.parameters,
        "scenario": scenario.to_dict(),
        "overrides": scenario.overrides,
        "seeds": list(seeds),
        "episodes": len(rows),
        "workers": workers,
        "wall_time_s": wall,
        "metrics": metrics,
        "versions": package_versions(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return Evaluation(rows=rows, summary=summary)


def write_evaluation(evaluation: Evaluation, out: Path) -> None:
    """Write ``episodes.csv`` and ``summary.json`` into ``out`` (each atomically)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    fields = list(evaluation.rows[0]) if evaluation.rows else ["seed"]
    _atomic_write(out / "episodes.csv", lambda fh: _write_csv(fh, fields, evaluation.rows))
    _atomic_write(
        out / "summary.json", lambda fh: json.dump(evaluation.summary, fh, indent=2, default=str)
    )


def _write_csv(fh, fields: list[str], rows: list[dict[str, float]]) -> None:
    writer = csv.DictWriter(fh, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def format_ci(stat: dict[str, Any], digits: int = 2) -> str:
    """``"0.12 [0.05, 0.20]"`` for a summary entry (``"n/a"`` when undefined)."""
    if stat["mean"] is None:
        return "n/a"
    text = f"{stat['mean']:.{digits}f}"
    if stat["ci95"]:
        low, high = stat["ci95"]
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def print_summary(summary: dict[str, Any], file=sys.stdout) -> None:
    """Print the aggregate table of one evaluation."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=(
            f"{summary['agent']} on {summary['scenario']['name']}: "
            f"{summary['episodes']} episodes, mean [95% CI]"
        )
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("n", justify="right")
    for name, stat in summary["metrics"].items():
        table.add_row(name, format_ci(stat, 3 if METRICS[name][1] else 2), str(stat["n"]))
    Console(file=file, width=100).print(table)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="driving evaluate",
        description="Drive an agent on held-out seeds and report closed-loop metrics with 95% "
        "confidence intervals (Wilson for rates, Student t for means).",
    )
    parser.add_argument(
        "--agent",
        required=True,
        help="agent spec: random, keep-lane, idm, modular-oracle, modular-vision, cnn:PATH",
    )
    add_episode_arguments(
        parser, "seed range A:B (half-open); default: the scenario's held-out evaluation range"
    )
    add_override_arguments(parser)
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use the accelerated simulation (default: the project default)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving evaluate``: returns the exit status."""
    args = build_parser().parse_args(argv)
    overrides = load_overrides(args.overrides, args.overrides_file)
    scenario = get_scenario(args.scenario).with_overrides(overrides)
    seeds = choose_seeds(scenario, args.episodes, args.seeds)
    if any(s in scenario.train_seeds for s in seeds):
        print(
            "driving evaluate: warning: these seeds overlap the training range; "
            "the results are not held-out",
            file=sys.stderr,
        )
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    agent = make_agent(args.agent, scenario)
    try:
        evaluation = evaluate_agent(
            agent,
            scenario,
            seeds,
            workers=args.workers,
            fast=args.fast,
            progress=False if args.quiet else f"evaluate {args.agent}",
        )
    finally:
        agent.close()
    write_evaluation(evaluation, args.out)
    print_summary(evaluation.summary)
    print(
        f"wrote {args.out / 'episodes.csv'} and {args.out / 'summary.json'} "
        f"({evaluation.summary['wall_time_s']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
