"""Every agent on the same held-out seeds, plus distribution shifts (``driving compare``).

A comparison recipe (:class:`CompareConfig`, a YAML file such as
``experiments/compare_highway.yaml``)::

    scenario: highway              # the main scenario
    overrides: {}                  # its overrides
    episodes: 100                  # held-out episodes per agent and variant
    workers: 2
    agents: [modular-oracle, modular-vision, idm, keep-lane, "cnn:runs/bc/best.ckpt"]
                                   # or {spec: "cnn:X.ckpt", series: DAgger, point: 1}:
                                   # checkpoints of one series form a line of the learning
                                   # curve; those of one point (one per training seed) pool
                                   # their episodes (without point: those with equal labels)
    shifts:                        # distribution-shift variants, same agents, same seeds
      - {name: dense, scenario: highway-dense}
      - {name: 3 lanes, scenario: highway, overrides: {lanes_count: 3}}
      - {name: blur 2, scenario: highway, overrides: {nuisance: {kind: blur, severity: 2}},
         pixels_only: true}        # only the agents that read the pixels drive it
    out: runs/compare_highway
    wandb: true                    # log the tables and plots to W&B (offline by default)
    fresh: false                   # true: drive every agent again (see driving.eval_cache)
    evaluations: null              # where the evaluation folders go (null: OUT/evaluations)

:func:`run_compare` writes ``report.md`` (tables with 95% intervals, cost columns, plots), one
evaluation folder per agent and variant, and ``results.json``. An agent whose evaluation folder
holds the same agent, checkpoint, scenario, seeds and code is not driven again
(:mod:`driving.eval_cache`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.registry import AgentSpec, make_agent
from driving.configs import load_mapping, require_bools, require_positive_ints
from driving.eval_cache import cached_evaluation, evaluation_key, forget, remember
from driving.evaluation import Evaluation, EvaluationSummary, evaluate_agent, write_evaluation
from driving.files import atomic_write_text, check_output_location
from driving.report import COLUMNS, comparison_rows, print_comparison, write_report
from driving.versions import package_versions
from envs.errors import UserError
from envs.scenarios import Scenario, get_scenario


@dataclass
class Shift:
    """A distribution-shift variant: another scenario and/or overrides.

    Attributes:
        pixels_only: only the agents that read the pixels drive it; the privileged ones (which
            read the ground truth) are left out, as a sensor nuisance leaves their episodes
            as they are (:mod:`envs.nuisances`).
    """

    name: str
    scenario: str
    overrides: dict[str, Any] = field(default_factory=dict)
    pixels_only: bool = False


@dataclass(frozen=True)
class AgentEntry:
    """One agent of a comparison.

    Attributes:
        spec: the agent.
        series: the learning-curve line a checkpoint belongs to (e.g. ``"DAgger"``).
        point: the curve point it belongs to (its runs pool their episodes).
    """

    spec: AgentSpec
    series: str | None = None
    point: int | None = None

    @classmethod
    def parse(cls, item: Any, where: str) -> AgentEntry:
        """A config's agent item: a spec string or ``{spec, series, point}``."""
        if isinstance(item, str):
            return cls(AgentSpec.parse(item))
        if not isinstance(item, dict):
            raise UserError(f"{where} must be an agent spec string")
        point = item.get("point")
        point_ok = "point" not in item or (
            isinstance(point, int) and not isinstance(point, bool) and point >= 0
        )
        if (
            set(item) - {"spec", "series", "point"}
            or not isinstance(item.get("spec"), str)
            or not point_ok
        ):
            raise UserError(
                f"{where} must be a spec or {{spec, series, point}} (point: an integer >= 0)"
            )
        series = item.get("series")
        return cls(AgentSpec.parse(item["spec"]), None if series is None else str(series), point)

    def to_dict(self) -> dict[str, Any]:
        """The config form."""
        data: dict[str, Any] = {"spec": str(self.spec)}
        if self.series is not None:
            data["series"] = self.series
        if self.point is not None:
            data["point"] = self.point
        return data


@dataclass
class CompareConfig:
    """What ``driving compare`` runs (see the module docstring)."""

    agents: list[AgentEntry]
    scenario: str = "highway"
    overrides: dict[str, Any] = field(default_factory=dict)
    episodes: int = 100
    workers: int = 2
    shifts: list[Shift] = field(default_factory=list)
    out: str = "runs/compare"
    wandb: bool = True
    title: str = "End-to-end vs modular: closed-loop comparison"
    fresh: bool = False
    evaluations: str | None = None
    """Where the evaluation folders go (None: ``out/evaluations``); a folder shared by several
    comparisons (``driving curve``'s store) lets each reuse the others' evaluations."""

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (as :func:`load_config` reads it)."""
        return {
            "agents": [a.to_dict() for a in self.agents],
            "scenario": self.scenario,
            "overrides": self.overrides,
            "episodes": self.episodes,
            "workers": self.workers,
            "shifts": [vars(s) for s in self.shifts],
            "out": self.out,
            "wandb": self.wandb,
            "title": self.title,
            "fresh": self.fresh,
            "evaluations": self.evaluations,
        }


@dataclass
class ComparisonResult:
    """One agent's evaluation on one variant of a comparison.

    Attributes:
        variant: the scenario variant (``"main: highway"``, a shift's name).
        series, point: the learning-curve line and point of a checkpoint (see
            :class:`AgentEntry`).
        summary: the aggregates.
        rows: the per-episode rows (:func:`~driving.metrics.episode_metrics`), in seed order,
            for paired comparisons; not stored in ``results.json`` (they are the evaluation
            folder's ``episodes.csv``).
    """

    variant: str
    series: str | None
    point: int | None
    summary: EvaluationSummary
    rows: list[dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` form (without the rows)."""
        return {
            "variant": self.variant,
            "series": self.series,
            "point": self.point,
            "summary": self.summary.to_dict(),
        }


def parse_agents(items: Any, where: str) -> list[AgentEntry]:
    """A non-empty list of agent items (see :meth:`AgentEntry.parse`)."""
    if not isinstance(items, list) or not items:
        raise UserError(f"{where}: 'agents' must be a non-empty list of agent specs")
    return [AgentEntry.parse(item, f"{where}: agents[{i}]") for i, item in enumerate(items)]


def load_config(path: Path) -> CompareConfig:
    """Parse and validate a compare YAML file (a :class:`UserError` names the file and key)."""
    raw = load_mapping(path, CompareConfig)
    where = f"config {path}"
    agents = parse_agents(raw.get("agents"), where)
    shifts = []
    for i, item in enumerate(raw.get("shifts") or []):
        if (
            not isinstance(item, dict)
            or set(item) - {"name", "scenario", "overrides", "pixels_only"}
            or ("name" not in item or "scenario" not in item)
            or not isinstance(item.get("pixels_only", False), bool)
        ):
            raise UserError(
                f"{where}: shifts[{i}] needs name, scenario (and overrides, pixels_only: a bool)"
            )
        shifts.append(
            Shift(
                str(item["name"]),
                str(item["scenario"]),
                item.get("overrides") or {},
                item.get("pixels_only", False),
            )
        )
    config = CompareConfig(**{**raw, "agents": agents, "shifts": shifts})
    require_positive_ints(config, path, ("episodes", "workers"))
    require_bools(config, path, ("wandb", "fresh"))
    return config


def drive_comparison(config: CompareConfig) -> list[ComparisonResult]:
    """Evaluate every agent on every variant (reusing matching evaluations, see
    :mod:`driving.eval_cache`); print each variant's table."""
    out = Path(config.out)
    evaluations = Path(config.evaluations) if config.evaluations else out / "evaluations"
    main = get_scenario(config.scenario).with_overrides(config.overrides)
    variants = [("main: " + config.scenario, main, False)] + [
        (s.name, get_scenario(s.scenario).with_overrides(s.overrides), s.pixels_only)
        for s in config.shifts
    ]
    for entry in config.agents:  # fail fast on a bad spec or checkpoint, before any driving
        make_agent(entry.spec, main).close()
    results: list[ComparisonResult] = []
    for variant, scenario, pixels_only in variants:
        seeds = scenario.evaluation_seeds.first(config.episodes)
        for entry in config.agents:
            evaluation = evaluate_or_reuse(
                entry.spec,
                variant,
                scenario,
                seeds,
                evaluations,
                workers=config.workers,
                fresh=config.fresh,
                skip_privileged=pixels_only,
            )
            if evaluation is not None:
                results.append(
                    ComparisonResult(
                        variant, entry.series, entry.point, evaluation.summary, evaluation.rows
                    )
                )
        print_comparison(
            [r.summary for r in results if r.variant == variant], f"{variant}: mean [95% CI]"
        )
    return results


def evaluate_or_reuse(
    spec: AgentSpec,
    variant: str,
    scenario: Scenario,
    seeds: Sequence[int],
    evaluations: Path,
    *,
    workers: int,
    fresh: bool = False,
    skip_privileged: bool = False,
) -> Evaluation | None:
    """``spec``'s evaluation on ``seeds`` of ``scenario``, read from its folder under
    ``evaluations`` when the folder holds the same agent, checkpoint, scenario, seeds and code
    (:mod:`driving.eval_cache`; never with ``fresh``), else driven and stored there. None when
    ``skip_privileged`` and the agent reads the ground truth (a pixels-only variant)."""
    folder = evaluations / slug(variant) / slug(str(spec))
    agent = make_agent(spec, scenario)
    try:
        if skip_privileged and agent.privileged:
            return None
        key = evaluation_key(spec, agent, scenario, seeds)
        evaluation = None if fresh else cached_evaluation(folder, key)
        if evaluation is None:
            forget(folder)
            evaluation = evaluate_agent(
                agent, scenario, seeds, workers=workers, progress=f"{variant} | {spec}"
            )
            write_evaluation(evaluation, folder)
            remember(folder, key)
        else:
            print(f"{variant} | {spec}: reused {folder} (same agent, code, seeds)")
        return evaluation
    finally:
        agent.close()


def run_compare(config: CompareConfig, command: str) -> Path:
    """Evaluate every agent on every variant; write the report; return its path."""
    check_output_location(Path(config.out), "out")
    return report_comparison(config, drive_comparison(config), command)


def report_comparison(config: CompareConfig, results: list[ComparisonResult], command: str) -> Path:
    """Write ``report.md``, its plots and ``results.json`` into ``config.out`` (and log them to
    W&B when ``config.wandb``); return the report's path."""
    out = Path(config.out)
    main = get_scenario(config.scenario).with_overrides(config.overrides)
    versions = package_versions()
    header = [
        f"Date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        f"Held-out seeds: the first {config.episodes} of each scenario's evaluation range "
        f"({main.evaluation_seeds}); every agent drives the same seeds.",
    ]
    written = write_report(results, out, title=config.title, command=command, header_lines=header)
    atomic_write_text(out / "results.json", json.dumps([r.to_dict() for r in results], indent=2))
    if config.wandb:
        _log_wandb(results, written.plots, config)
    print("\n".join(written.main_lines))
    print(f"wrote {written.path}")
    return written.path


def slug(text: str) -> str:
    """``text`` as a folder name (characters other than letters, digits, ``-_.`` as ``_``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")


def _log_wandb(results: list[ComparisonResult], plots: list[Path], config: CompareConfig) -> None:
    from driving.wandb_setup import default_wandb_mode

    default_wandb_mode()
    import wandb

    run = wandb.init(
        project="driving-stack",
        job_type="compare",
        dir=config.out,
        config={
            "episodes": config.episodes,
            "scenario": config.scenario,
            "agents": [str(a.spec) for a in config.agents],
        },
    )
    columns = ["agent", "scenario", "episodes", *(t for t, _ in COLUMNS.values())]
    table = wandb.Table(columns=["variant", *columns])
    for r in results:
        table.add_data(r.variant, *comparison_rows([r.summary])[0])
    run.log({"comparison": table, **{p.stem: wandb.Image(str(p)) for p in plots}})
    run.finish()
