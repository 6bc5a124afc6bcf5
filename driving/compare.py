"""``driving compare``: every agent on the same held-out seeds, plus distribution shifts.

Reads a YAML config (see ``experiments/compare_highway.yaml``)::

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
    out: runs/compare_highway
    wandb: true                    # log the tables and plots to W&B (offline by default)
    fresh: false                   # true: drive every agent again (see driving.eval_cache)

and writes ``report.md`` (tables with 95% intervals, cost columns, plots), one evaluation folder
per agent and variant, and ``results.json``. Command-line flags override the config. An agent
whose evaluation folder holds the same agent, checkpoint, scenario, seeds and code is not
driven again (:mod:`driving.eval_cache`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from agents.registry import make_agent
from driving.argparse_util import (
    ArgumentParser,
    apply_flags,
    positive_int,
    require_bools,
    require_positive_ints,
)
from driving.comparison_table import print_comparison
from driving.eval_cache import cached_summary, evaluation_key, forget, remember
from driving.evaluate import evaluate_agent, write_evaluation
from driving.report import write_report
from driving.versions import package_versions
from envs.errors import UserError
from envs.scenarios import get_scenario


@dataclass
class Shift:
    """A distribution-shift variant: another scenario and/or overrides."""

    name: str
    scenario: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompareConfig:
    """What ``driving compare`` runs (see the module docstring)."""

    agents: list[str | dict[str, str]]
    scenario: str = "highway"
    overrides: dict[str, Any] = field(default_factory=dict)
    episodes: int = 100
    workers: int = 2
    shifts: list[Shift] = field(default_factory=list)
    out: str = "runs/compare"
    wandb: bool = True
    title: str = "End-to-end vs modular: closed-loop comparison"
    fresh: bool = False


def load_config(path: Path) -> CompareConfig:
    """Parse and validate a compare YAML file (a :class:`UserError` names the file and key)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise UserError(f"config {path} must be a mapping")
    valid = {f.name for f in fields(CompareConfig)}
    unknown = set(raw) - valid
    if unknown:
        raise UserError(f"config {path}: unknown key(s) {sorted(unknown)}; valid: {sorted(valid)}")
    if not isinstance(raw.get("agents"), list) or not raw["agents"]:
        raise UserError(f"config {path}: 'agents' must be a non-empty list of agent specs")
    for i, item in enumerate(raw["agents"]):
        if isinstance(item, dict):
            point = item.get("point", 0)
            if (
                set(item) - {"spec", "series", "point"}
                or not isinstance(item.get("spec"), str)
                or not isinstance(point, int)
                or isinstance(point, bool)
                or point < 0
            ):
                raise UserError(
                    f"config {path}: agents[{i}] must be a spec or {{spec, series, point}} "
                    "(point: an integer >= 0)"
                )
        elif not isinstance(item, str):
            raise UserError(f"config {path}: agents[{i}] must be an agent spec string")
    shifts = []
    for i, item in enumerate(raw.get("shifts") or []):
        if (
            not isinstance(item, dict)
            or set(item) - {"name", "scenario", "overrides"}
            or ("name" not in item or "scenario" not in item)
        ):
            raise UserError(f"config {path}: shifts[{i}] needs name, scenario (and overrides)")
        shifts.append(Shift(str(item["name"]), str(item["scenario"]), item.get("overrides") or {}))
    config = CompareConfig(**{**raw, "shifts": shifts})
    require_positive_ints(config, path, ("episodes", "workers"))
    require_bools(config, path, ("wandb", "fresh"))
    return config


def run_compare(config: CompareConfig, command: str) -> Path:
    """Evaluate every agent on every variant; write the report; return its path."""
    out = Path(config.out)
    main = get_scenario(config.scenario).with_overrides(config.overrides)
    variants = [("main: " + config.scenario, main)] + [
        (s.name, get_scenario(s.scenario).with_overrides(s.overrides)) for s in config.shifts
    ]
    entries = [a if isinstance(a, dict) else {"spec": a} for a in config.agents]
    for entry in entries:  # fail fast on a bad spec or checkpoint, before any driving
        make_agent(entry["spec"], main).close()
    results = []
    for variant, scenario in variants:
        seeds = scenario.evaluation_seeds.first(config.episodes)
        for entry in entries:
            spec = entry["spec"]
            folder = out / "evaluations" / _slug(variant) / _slug(spec)
            agent = make_agent(spec, scenario)
            try:
                key = evaluation_key(spec, agent, scenario, seeds)
                summary = None if config.fresh else cached_summary(folder, key)
                if summary is None:
                    forget(folder)
                    evaluation = evaluate_agent(
                        agent,
                        scenario,
                        seeds,
                        workers=config.workers,
                        progress=f"{variant} | {spec}",
                    )
                    write_evaluation(evaluation, folder)
                    remember(folder, key)
                    summary = evaluation.summary
                else:
                    print(f"{variant} | {spec}: reused {folder} (same agent, code, seeds)")
            finally:
                agent.close()
            results.append(
                {
                    "variant": variant,
                    "series": entry.get("series"),
                    "point": entry.get("point"),
                    "summary": summary,
                }
            )
        print_comparison(
            [r["summary"] for r in results if r["variant"] == variant], f"{variant}: mean [95% CI]"
        )
    versions = package_versions()
    header = [
        f"Date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        f"Held-out seeds: the first {config.episodes} of each scenario's evaluation range "
        f"({main.evaluation_seeds}); every agent drives the same seeds.",
    ]
    report, plots = write_report(
        results, out, title=config.title, command=command, header_lines=header
    )
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    if config.wandb:
        _log_wandb(results, plots, config)
    print(f"wrote {report}")
    return report


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")


def _log_wandb(results: list[dict[str, Any]], plots: list[Path], config: CompareConfig) -> None:
    from driving.wandb_setup import default_wandb_mode

    default_wandb_mode()
    import wandb

    from driving.comparison_table import COLUMNS, comparison_rows

    run = wandb.init(
        project="driving-stack",
        job_type="compare",
        dir=config.out,
        config={
            "episodes": config.episodes,
            "scenario": config.scenario,
            "agents": [a if isinstance(a, str) else a["spec"] for a in config.agents],
        },
    )
    columns = ["agent", "scenario", "episodes", *(t for t, _ in COLUMNS.values())]
    table = wandb.Table(columns=["variant", *columns])
    for r in results:
        table.add_data(r["variant"], *comparison_rows([r["summary"]])[0])
    run.log({"comparison": table, **{p.stem: wandb.Image(str(p)) for p in plots}})
    run.finish()


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="driving compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path, help="compare YAML config")
    parser.add_argument("--episodes", type=positive_int, help="override episodes")
    parser.add_argument("--workers", type=positive_int, help="override workers")
    parser.add_argument("--agents", help="override agents: comma-separated specs")
    parser.add_argument("--out", help="override the output folder")
    parser.add_argument("--no-wandb", action="store_true", help="do not log to W&B")
    parser.add_argument(
        "--fresh",
        action="store_true",
        default=None,
        help="drive every agent again, even where a matching evaluation is stored",
    )
    args = parser.parse_args(argv)
    config = load_config(args.config)
    apply_flags(config, args, ("episodes", "workers", "out", "fresh"))
    if args.agents:
        config.agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    if args.no_wandb:
        config.wandb = False
    command = "driving compare " + shlex.join(list(argv if argv is not None else sys.argv[2:]))
    run_compare(config, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
