"""The scenario suite: each scenario's CNN against modular-vision, clean and under nuisances
(``driving suite``).

Reads a YAML recipe (see ``experiments/compare_suite.yaml``)::

    scenarios: [highway, merge, racetrack]   # registered scenario names
    overrides: {}                  # applied to every scenario (e.g. {duration: 10} for a quick
                                   # run; no nuisance: those are the variants below)
    agents: [modular-oracle, modular-vision, idm]   # driven on every scenario (clean)
    cnns:                          # trained per scenario through the store (driving.train.store)
      - name: cnn                  # the first is "the CNN" of the summary table
        train_config: experiments/bc_cpu_small.yaml
        expert: modular-oracle
        labels: 50000              # expert labels (frames) it is trained on
        steps: 10000               # gradient steps, from scratch (the store's one rule)
        seed: 0
        dart_noise_steer: 0.02     # DART noise on the demonstrations' executed steering
        train_overrides: {}        # merged over train_config, e.g.
                                   # {model: {network: {speed_input: false}}}
    checkpoints: {}                # or a given checkpoint per scenario and CNN name, instead
                                   # of training: {highway: {cnn: runs/bc/best.ckpt}}
    nuisances: {kinds: [noise, blur, brightness, dropped-frame, blotches], severities: [1, 3]}
    episodes: 100                  # held-out episodes per agent and variant
    workers: 2
    out: runs/compare_suite
    store: runs/store              # datasets, trained points and evaluations, shared by recipes
    fresh: false

Per scenario it runs a comparison (:func:`driving.comparison.drive_comparison`): every agent
and the scenario's CNNs on the clean scenario, then the agents that read the pixels (the CNNs,
modular-vision) under each nuisance at each severity (``pixels_only``: a nuisance does not
change a privileged agent's episodes), all on the same held-out seeds; ``OUT/<scenario>/``
holds its report. ``OUT/report.md`` then has one table per scenario and the summary: for each
(scenario, nuisance) the paired difference in driving score ``CNN - modular-vision`` with its
95% interval and the winner by :func:`driving.crossover.winner` (rule fixed before the runs).
Everything is reused from the store when done, so the suite resumes scenario by scenario and
agent by agent. Each scenario also leaves its summary rows and section in ``OUT/<scenario>/
suite.json``, and ``OUT/report.md`` gathers every scenario found there, so a suite built over
several runs (``--scenarios merge`` on one day, ``--scenarios racetrack`` on another, into one
committed ``out``; a fresh machine has no store) still has one summary table; each section
states the date, command and versions of the run that drove it. Beside its report,
``OUT/<scenario>/`` keeps the per-episode rows of every evaluation (``evaluations/<variant>/
<agent>/``, a CNN under its recipe's name) and each CNN's network (``<name>.ckpt``, weights
only), so a committed ``out`` holds what the paired intervals were computed from.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.registry import AgentSpec
from driving.comparison import (
    AgentEntry,
    CompareConfig,
    ComparisonResult,
    Shift,
    drive_comparison,
    parse_agents,
    report_comparison,
    slug,
)
from driving.configs import load_mapping, require_bools, require_positive_ints
from driving.crossover import NON_INFERIORITY_MARGIN, winner
from driving.evaluation import Evaluation, write_evaluation
from driving.files import atomic_write_text, check_output_location
from driving.mixers import DartNoise
from driving.report import REFERENCE_AGENT, comparison_markdown, paired_difference
from driving.stats import Stat, format_ci
from driving.train.checkpoint_io import save_network_of
from driving.train.store import (
    Store,
    demonstrations,
    load_train_config,
    merged,
    trained_point,
)
from driving.versions import package_versions
from envs.errors import UserError
from envs.nuisances import KINDS, SEVERITIES, refuse_in_training
from envs.scenarios import SCENARIOS, get_scenario

CLEAN = "clean"
"""The summary table's name of the variant without a nuisance."""


@dataclass(frozen=True)
class CnnRecipe:
    """How the suite trains one CNN per scenario (see the module docstring)."""

    name: str = "cnn"
    train_config: str = "experiments/bc_cpu_small.yaml"
    expert: str = "modular-oracle"
    labels: int = 50_000
    steps: int = 10_000
    seed: int = 0
    dart_noise_steer: float = 0.02
    train_overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, item: Any, where: str) -> CnnRecipe:
        """A recipe's ``cnns`` item (a :class:`UserError` names the bad key)."""
        if not isinstance(item, dict):
            raise UserError(f"{where} must be a mapping of {sorted(cls.__dataclass_fields__)}")
        unknown = set(item) - set(cls.__dataclass_fields__)
        if unknown:
            raise UserError(f"{where}: unknown key(s) {sorted(unknown)}")
        recipe = cls(**item)
        for name in ("labels", "steps"):
            value = getattr(recipe, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"{where}: {name} must be a positive integer, got {value!r}")
        std = recipe.dart_noise_steer
        if not isinstance(std, int | float) or isinstance(std, bool) or not 0 <= std < 1:
            raise UserError(f"{where}: dart_noise_steer must be a number in [0, 1), got {std!r}")
        if not isinstance(recipe.train_overrides, dict) or not isinstance(recipe.name, str):
            raise UserError(f"{where}: train_overrides must be a mapping and name a string")
        return recipe


@dataclass
class SuiteConfig:
    """What ``driving suite`` runs (see the module docstring for each key)."""

    scenarios: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    agents: list[str] = field(default_factory=lambda: ["modular-oracle", REFERENCE_AGENT, "idm"])
    cnns: list[CnnRecipe] = field(default_factory=lambda: [CnnRecipe()])
    checkpoints: dict[str, dict[str, str]] = field(default_factory=dict)
    nuisances: dict[str, list] = field(
        default_factory=lambda: {"kinds": list(KINDS), "severities": [1, 3]}
    )
    episodes: int = 100
    workers: int = 2
    out: str = "runs/compare_suite"
    store: str = "runs/store"
    fresh: bool = False
    title: str = "End-to-end vs modular across the scenario suite"

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name, nuisance override)`` of every nuisance variant, kinds first."""
        return [
            (f"{kind} {level}", {"kind": kind, "severity": level})
            for kind in self.nuisances["kinds"]
            for level in self.nuisances["severities"]
        ]


def load_suite_config(path: Path, scenarios: list[str] | None = None) -> SuiteConfig:
    """Parse a suite recipe (a :class:`UserError` names the file and the bad key);
    ``scenarios`` replaces the recipe's (``--scenarios``)."""
    raw = load_mapping(path, SuiteConfig)
    where = f"config {path}"
    if scenarios is not None:
        raw["scenarios"] = scenarios
    scenarios = raw.get("scenarios")
    if not isinstance(scenarios, list) or not scenarios:
        raise UserError(f"{where}: scenarios must be a non-empty list of {sorted(SCENARIOS)}")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise UserError(f"{where}: overrides must be a mapping")
    refuse_in_training(
        overrides, False, "the suite adds the nuisances as variants: list them under nuisances"
    )
    for name in scenarios:
        get_scenario(name).with_overrides(overrides)
    agents = [str(a.spec) for a in parse_agents(raw.get("agents", [REFERENCE_AGENT]), where)]
    if REFERENCE_AGENT not in agents:
        raise UserError(f"{where}: agents must include {REFERENCE_AGENT} (the reference)")
    items = raw.get("cnns", [{}])
    if not isinstance(items, list) or not items:
        raise UserError(f"{where}: cnns must be a non-empty list of mappings")
    cnns = [CnnRecipe.parse(item, f"{where}: cnns[{i}]") for i, item in enumerate(items)]
    if len({c.name for c in cnns}) != len(cnns):
        raise UserError(f"{where}: cnns need distinct names")
    checkpoints = raw.get("checkpoints") or {}
    if not isinstance(checkpoints, dict) or any(
        s not in scenarios or not isinstance(v, dict) or set(v) - {c.name for c in cnns}
        for s, v in checkpoints.items()
    ):
        raise UserError(
            f"{where}: checkpoints must map a scenario of the suite to {{cnn name: path}}"
        )
    nuisances = raw.get("nuisances", {"kinds": list(KINDS), "severities": [1, 3]})
    if (
        not isinstance(nuisances, dict)
        or set(nuisances) != {"kinds", "severities"}
        or not isinstance(nuisances["kinds"], list)
        or any(k not in KINDS for k in nuisances["kinds"])
        or not isinstance(nuisances["severities"], list)
        or any(s not in SEVERITIES for s in nuisances["severities"])
    ):
        raise UserError(
            f"{where}: nuisances must be {{kinds: a list of {list(KINDS)}, severities: a list "
            f"of {list(SEVERITIES)}}} (empty lists: no nuisance)"
        )
    config = SuiteConfig(
        **{
            **raw,
            "agents": agents,
            "cnns": cnns,
            "checkpoints": checkpoints,
            "overrides": overrides,
        },
    )
    config.nuisances = nuisances
    require_positive_ints(config, path, ("episodes", "workers"))
    require_bools(config, path, ("fresh",))
    return config


def scenario_cnn(config: SuiteConfig, store: Store, scenario_name: str, recipe: CnnRecipe) -> Path:
    """The checkpoint of ``recipe``'s CNN on ``scenario_name``: given in ``checkpoints``, or
    trained through the store (reused when done)."""
    given = config.checkpoints.get(scenario_name, {}).get(recipe.name)
    if given:
        return Path(given)
    scenario = get_scenario(scenario_name).with_overrides(config.overrides)
    base = load_train_config(recipe.train_config)
    base = merged(base, recipe.train_overrides)
    noise = DartNoise.from_settings(scenario.action, recipe.dart_noise_steer, 0.0)
    data, key = demonstrations(store, scenario, recipe.expert, noise, recipe.labels, config.workers)
    return trained_point(store, base, data, key, recipe.labels, recipe.steps, recipe.seed)


@dataclass(frozen=True)
class HeadToHead:
    """One (scenario, variant) row of the summary: the CNN against modular-vision.

    Attributes:
        scenario, variant: where (``variant`` :data:`CLEAN` or ``"<kind> <severity>"``).
        cnn, vision: their mean driving scores ``[95% CI]``, formatted.
        difference: the paired ``CNN - modular-vision`` score difference and its interval.
        winner: :func:`driving.crossover.winner` of it ("undecided" without an interval).
    """

    scenario: str
    variant: str
    cnn: str
    vision: str
    difference: Stat
    winner: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``difference`` as :meth:`driving.stats.Stat.to_dict`)."""
        return {**self.__dict__, "difference": self.difference.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadToHead:
        """The inverse of :meth:`to_dict`."""
        return cls(**{**data, "difference": Stat.from_dict(data["difference"])})


SECTION_FILE = "suite.json"
"""Per scenario, in ``OUT/<scenario>/``: its summary rows and report section."""


@dataclass(frozen=True)
class ScenarioSection:
    """One scenario's part of the suite report, kept so later runs can gather it.

    Attributes:
        scenario: the scenario's name.
        rows: its summary rows, clean first.
        lines: its markdown section (heading, CNNs, clean table, nuisance rows).
        date, command: when and by what command it was driven (ISO 8601, UTC).
        versions: :func:`driving.versions.package_versions` of that run.
    """

    scenario: str
    rows: list[HeadToHead]
    lines: list[str]
    date: str
    command: str
    versions: dict[str, str]

    def write(self, out: Path) -> None:
        """Write ``out/<scenario>/suite.json`` atomically."""
        data = {**self.__dict__, "rows": [r.to_dict() for r in self.rows]}
        (out / self.scenario).mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / self.scenario / SECTION_FILE, json.dumps(data, indent=2))

    @classmethod
    def read(cls, folder: Path) -> ScenarioSection:
        """The section in ``folder`` (a :class:`UserError` when it is unreadable)."""
        path = folder / SECTION_FILE
        try:
            data = json.loads(path.read_text())
            return cls(**{**data, "rows": [HeadToHead.from_dict(r) for r in data["rows"]]})
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"{path}: not a suite section ({error}); remove it") from error


def gathered_sections(out: Path) -> list[ScenarioSection]:
    """Every scenario section in ``out``, in the registry's scenario order."""
    return [
        ScenarioSection.read(out / name)
        for name in SCENARIOS
        if (out / name / SECTION_FILE).is_file()
    ]


def head_to_heads(scenario: str, results: list[ComparisonResult], cnn: str) -> list[HeadToHead]:
    """The summary rows of one scenario's results, ``cnn`` being the CNN's agent name."""
    rows = []
    for variant in dict.fromkeys(r.variant for r in results):
        here = {r.summary.agent: r for r in results if r.variant == variant}
        if cnn not in here or REFERENCE_AGENT not in here:
            continue
        stat = paired_difference([here[cnn]], here[REFERENCE_AGENT], "score")
        rows.append(
            HeadToHead(
                scenario,
                CLEAN if variant.startswith("main: ") else variant.removeprefix(f"{scenario} + "),
                format_ci(here[cnn].summary.metrics["score"], 3),
                format_ci(here[REFERENCE_AGENT].summary.metrics["score"], 3),
                stat,
                winner(*stat.ci95) if stat.ci95 else "undecided",
            )
        )
    return rows


def summary_markdown(rows: list[HeadToHead]) -> list[str]:
    """The summary table, with the winner rule stated above it."""
    lines = [
        "**Winner rule** (fixed before the runs, `driving.crossover.winner`): on the same "
        "held-out seeds, the paired difference in per-episode driving score CNN − "
        f"{REFERENCE_AGENT} has a 95% percentile-bootstrap interval; the CNN wins when its "
        f"lower end is above 0, {REFERENCE_AGENT} when its upper end is below 0, *tie* when it "
        f"lies within ±{NON_INFERIORITY_MARGIN:g}, *undecided* otherwise.",
        "",
        f"| scenario | nuisance | CNN score | {REFERENCE_AGENT} score | CNN − vision [95% CI] "
        "| pairs | winner |",
        "|---|---|---|---|---|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.variant} | {r.cnn} | {r.vision} | "
            f"{format_ci(r.difference, 3, signed=True)} | {r.difference.n} | **{r.winner}** |"
        )
    return lines


def keep_results(
    folder: Path,
    results: list[ComparisonResult],
    cnns: list[CnnRecipe],
    checkpoints: list[Path],
) -> None:
    """Keep one scenario's evaluations and CNNs in its committed ``folder`` (``OUT/<scenario>``;
    the store they come from does not outlive the machine): ``evaluations/<variant>/<agent>/``
    (``episodes.csv``, ``summary.json``; a CNN under its recipe's name) and ``<name>.ckpt``,
    each CNN's network (weights and policy record)."""
    names = {f"cnn:{ckpt}": recipe.name for recipe, ckpt in zip(cnns, checkpoints, strict=True)}
    for r in results:
        agent = names.get(r.summary.agent, r.summary.agent)
        target = folder / "evaluations" / slug(r.variant) / slug(agent)
        write_evaluation(Evaluation(r.rows, r.summary), target)
    for recipe, ckpt in zip(cnns, checkpoints, strict=True):
        save_network_of(ckpt, folder / f"{recipe.name}.ckpt")


def run_suite(config: SuiteConfig, command: str) -> Path:
    """Train (or reuse) each scenario's CNNs, drive every comparison, write the reports
    (``OUT/report.md`` gathers this run's scenarios and those earlier runs left in ``OUT``)."""
    started = time.perf_counter()
    out, store = Path(config.out), Store(Path(config.store))
    check_output_location(out, "out")
    for name in config.scenarios:
        checkpoints = [scenario_cnn(config, store, name, recipe) for recipe in config.cnns]
        cnn_specs = [AgentSpec("cnn", str(ckpt)) for ckpt in checkpoints]
        compare = CompareConfig(
            agents=[
                *(AgentEntry(AgentSpec.parse(a)) for a in config.agents),
                *(AgentEntry(spec) for spec in cnn_specs),
            ],
            scenario=name,
            overrides=config.overrides,
            episodes=config.episodes,
            workers=config.workers,
            shifts=[
                Shift(
                    f"{name} + {variant}",
                    name,
                    {**config.overrides, "nuisance": nuisance},
                    pixels_only=True,
                )
                for variant, nuisance in config.variants()
            ],
            out=str(out / name),
            wandb=False,
            title=f"{config.title}: {name}",
            fresh=config.fresh,
            evaluations=str(store.evaluations),  # shared with curves (same variant names)
        )
        results = drive_comparison(compare)
        report = report_comparison(compare, results, command)
        keep_results(out / name, results, config.cnns, checkpoints)
        rows = head_to_heads(name, results, str(cnn_specs[0]))
        pairs = zip(config.cnns, cnn_specs, strict=True)
        names = ", ".join(f"`{recipe.name}` = `{spec}`" for recipe, spec in pairs)
        clean = [r.summary for r in results if r.variant.startswith("main: ")]
        ScenarioSection(
            name,
            rows,
            [
                f"CNNs: {names}. Full report: [{name}/report.md]({report.relative_to(out)}).",
                "",
                "Clean scenario, mean [95% CI] over the episodes:",
                "",
                comparison_markdown(clean),
                "",
                *summary_markdown(rows)[2:],
            ],
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            command,
            package_versions(),
        ).write(out)
    sections = gathered_sections(out)
    summary = [row for section in sections for row in section.rows]
    minutes = (time.perf_counter() - started) / 60
    parts = [
        f"# {config.title}",
        "",
        f"Held-out seeds: the first {config.episodes} of each scenario's evaluation range; "
        "every agent drives the same seeds. Scenarios driven by this run: "
        f"{', '.join(config.scenarios)} ({minutes:.1f} min wall time for what it did not find "
        "done); each section below states the run that drove it.",
        "",
        "## Summary: CNN vs modular-vision per scenario and nuisance",
        "",
        *summary_markdown(summary),
        "",
    ]
    for section in sections:
        versions = ", ".join(f"{k} {v}" for k, v in section.versions.items())
        parts += [
            f"## {section.scenario}",
            "",
            f"Driven {section.date} by `{section.command}`. Versions: {versions}.",
            "",
            *section.lines,
            "",
        ]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(parts))
    atomic_write_text(out / "summary.json", json.dumps([r.to_dict() for r in summary], indent=2))
    print("\n".join(summary_markdown(summary)))
    print(f"wrote {report} ({minutes:.1f} min)")
    return report
