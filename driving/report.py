"""The comparison report: markdown tables and plots from evaluation summaries.

The comparison table has one row per agent with the headline metrics and their 95% intervals
(:data:`COLUMNS`), in markdown for ``report.md`` and through rich on the terminal.

Plots (matplotlib, PNG):

- ``bars_<metric>.png``: one bar per agent and scenario variant, with its 95% interval;
- ``learning_curve.png``: when several CNN checkpoints trained on different numbers of expert
  labels are compared, completion and collision rate against labelled frames, one line per
  series (e.g. BC and DAgger), with the modular agents' levels as reference lines; the report
  then also names the crossover with modular-vision (:func:`crossover_lines`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from driving.crossover import BudgetInterval, crossover_markdown, find_crossover
from driving.evaluation import EvaluationSummary
from driving.files import atomic_write_text
from driving.stats import Stat, format_ci, paired_bootstrap, pool_rates, summarize

if TYPE_CHECKING:
    from driving.comparison import ComparisonResult

COLUMNS: dict[str, tuple[str, int]] = {
    "score": ("score", 3),
    "completed": ("completed", 2),
    "collided": ("collided", 2),
    "mean_speed_mps": ("speed m/s", 1),
    "lane_offset_m": ("lane offset m", 2),
    "autonomy": ("autonomy", 2),
    "latency_ms": ("latency ms", 2),
}
"""Summary metric -> (column title, decimals) of the comparison table."""
PAIRED_METRICS: dict[str, tuple[str, int]] = {
    "score": ("score", 3),
    "completed": ("completed", 2),
    "collided": ("collided", 2),
    "mean_speed_mps": ("speed m/s", 1),
    "lane_offset_m": ("lane offset m", 2),
}
"""Metric -> (column title, decimals) of the paired-difference table."""
BAR_METRICS = ("score", "completed", "collided", "mean_speed_mps")
REFERENCE_AGENT = "modular-vision"
"""The agent every other is paired against: the modular pipeline on the same pixels."""
REFERENCE_AGENTS = ("modular-oracle", REFERENCE_AGENT)


def comparison_rows(
    summaries: list[EvaluationSummary], names: Sequence[str] | None = None
) -> list[list[str]]:
    """Table rows ``[agent, scenario, n, metric cells...]`` for evaluation summaries; ``names``
    (one per summary) replaces the agent specs in the first column."""
    rows = []
    for i, s in enumerate(summaries):
        cells = [format_ci(s.metrics[m], digits) for m, (_, digits) in COLUMNS.items()]
        rows.append([names[i] if names else s.agent, s.scenario_name, str(s.episodes), *cells])
    return rows


def comparison_markdown(
    summaries: list[EvaluationSummary], names: Sequence[str] | None = None
) -> str:
    """The comparison as a markdown table (mean [95% CI]); ``names`` as in
    :func:`comparison_rows`."""
    header = ["agent", "scenario", "episodes", *(title for title, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(summaries, names)]
    return "\n".join(lines)


def result_name(result: ComparisonResult) -> str:
    """A report row's agent: a curve point's series and labels before its checkpoint
    (``"DAgger, 10,000 labels: cnn:runs/store/points/<key>/..."``), else the agent spec; the
    store's checkpoint paths alone say neither."""
    s = result.summary
    if result.series is None:
        return s.agent
    return f"{result.series}, {s.expert_labels:,} labels: {s.agent}"


def print_comparison(
    summaries: list[EvaluationSummary], title: str, file: IO[str] = sys.stdout
) -> None:
    """Print the comparison table to the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("agent", overflow="fold", min_width=28)  # checkpoint paths: fold, not cut
    for name in ["scenario", "n", *(t for t, _ in COLUMNS.values())]:
        table.add_column(name, justify="left" if name == "scenario" else "right")
    for row in comparison_rows(summaries):
        table.add_row(*row)
    Console(file=file, width=160).print(table)


def _err(stat: Stat) -> tuple[float, float]:
    if stat.mean is None or not stat.ci95:
        return 0.0, 0.0
    # max(0, .) absorbs rounding: Wilson's bound at a rate of 1.0 can come out as 0.9999999
    return max(0.0, stat.mean - stat.ci95[0]), max(0.0, stat.ci95[1] - stat.mean)


def bar_plot(results: list[ComparisonResult], metric: str, path: Path) -> Path:
    """Bars of ``metric`` per agent, grouped by scenario variant, with 95% intervals."""
    variants = list(dict.fromkeys(r.variant for r in results))
    agents = list(dict.fromkeys(r.summary.agent for r in results))
    width = 0.8 / max(len(agents), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(variants) * max(1, len(agents) / 3)), 4))
    for i, agent in enumerate(agents):
        xs, ys, errs = [], [], ([], [])
        for j, variant in enumerate(variants):
            for r in results:
                if r.variant == variant and r.summary.agent == agent:
                    stat = r.summary.metrics[metric]
                    if stat.mean is None:
                        continue
                    xs.append(j + (i - (len(agents) - 1) / 2) * width)
                    ys.append(stat.mean)
                    lo, hi = _err(stat)
                    errs[0].append(lo)
                    errs[1].append(hi)
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=agent)
    ax.set_xticks(range(len(variants)), variants)
    title = COLUMNS.get(metric, (metric, 2))[0]
    ax.set_ylabel(title)
    n = results[0].summary.episodes if results else 0
    ax.set_title(f"{title} (mean, 95% CI, {n} episodes each)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclass
class CurvePoint:
    """One point of a learning curve: a series' checkpoints of one curve point (one per
    training seed), their episodes pooled.

    Attributes:
        runs: the checkpoints' results.
        score: the mean driving score over all their episodes (Student t interval).
        completed, collided: pooled rates (:func:`~driving.stats.pool_rates`).
    """

    runs: list[ComparisonResult]
    score: Stat
    completed: Stat
    collided: Stat

    @classmethod
    def pool(cls, runs: list[ComparisonResult]) -> CurvePoint:
        """The point of ``runs`` (one per training seed)."""
        return cls(
            runs,
            summarize([row["score"] for r in runs for row in r.rows], rate=False),
            pool_rates([r.summary.metrics["completed"] for r in runs]),
            pool_rates([r.summary.metrics["collided"] for r in runs]),
        )

    @property
    def run_labels(self) -> list[int]:
        """Each run's expert-labelled frames (DAgger's differ when round episodes end early)."""
        return [r.summary.expert_labels for r in self.runs]

    @property
    def labels(self) -> int:
        """The runs' mean number of expert-labelled frames (the point's x)."""
        return round(sum(self.run_labels) / len(self.runs))

    def labels_text(self) -> str:
        """``"58,000"``, or ``"57,310-57,714"`` when the runs' label counts differ."""
        low, high = min(self.run_labels), max(self.run_labels)
        return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _curve_points(results: list[ComparisonResult], variant: str) -> dict[str, list[CurvePoint]]:
    """CNN results of ``variant`` with a label count, by series (``"BC"``, ``"DAgger"``, ...),
    pooled per curve point (``point``; without one, per label count) and sorted by labels."""
    grouped: dict[str, dict[tuple[str, int], list[ComparisonResult]]] = {}
    for r in results:
        if r.variant == variant and r.summary.agent.startswith("cnn") and r.summary.expert_labels:
            name = r.series or "CNN (BC)"
            key = ("point", r.point) if r.point is not None else ("labels", r.summary.expert_labels)
            grouped.setdefault(name, {}).setdefault(key, []).append(r)
    return {
        name: sorted((CurvePoint.pool(runs) for runs in by_point.values()), key=lambda p: p.labels)
        for name, by_point in grouped.items()
    }


def seed_means(runs: Sequence[ComparisonResult], metric: str) -> dict[int, float]:
    """``metric`` per episode seed, averaged over ``runs`` (e.g. the training seeds of one
    curve point: they drive the same episode seeds)."""
    by_seed: dict[int, list[float]] = {}
    for r in runs:
        for row in r.rows:
            by_seed.setdefault(int(row["seed"]), []).append(row[metric])
    return {seed: sum(values) / len(values) for seed, values in by_seed.items()}


def paired_difference(
    candidate: Sequence[ComparisonResult], reference: ComparisonResult, metric: str
) -> Stat:
    """The mean per-seed difference ``candidate - reference`` in ``metric`` on the seeds both
    drove, with its paired bootstrap 95% interval (:func:`~driving.stats.paired_bootstrap`);
    several candidate runs (training seeds) are averaged per episode seed first."""
    a, b = seed_means(candidate, metric), seed_means([reference], metric)
    seeds = sorted(set(a) & set(b))
    return paired_bootstrap([a[s] for s in seeds], [b[s] for s in seeds])


def _reference(results: list[ComparisonResult], variant: str) -> ComparisonResult | None:
    return next(
        (r for r in results if r.variant == variant and r.summary.agent == REFERENCE_AGENT), None
    )


def paired_markdown(results: list[ComparisonResult], variant: str) -> list[str]:
    """Markdown: every agent of ``variant`` against modular-vision, seed by seed (the paired
    differences of :data:`PAIRED_METRICS` with their bootstrap intervals)."""
    reference = _reference(results, variant)
    if reference is None:
        return []
    titles = [title for title, _ in PAIRED_METRICS.values()]
    lines = [
        f"Paired differences, agent − {REFERENCE_AGENT}, on the same seeds: mean [95% paired "
        "bootstrap CI] (10,000 resamples of the seeds, seeded).",
        "",
        "| agent | pairs | " + " | ".join(titles) + " |",
        "|" + " --- |" * (2 + len(titles)),
    ]
    for r in results:
        if r.variant != variant or r is reference:
            continue
        diffs = [paired_difference([r], reference, m) for m in PAIRED_METRICS]
        cells = [
            format_ci(d, digits, signed=True)
            for d, (_, digits) in zip(diffs, PAIRED_METRICS.values(), strict=True)
        ]
        lines.append(f"| {result_name(r)} | {diffs[0].n} | " + " | ".join(cells) + " |")
    return lines


STAGE_AGENTS: dict[str, str] = {
    "modular-vision:oracle-lanes": "lanes",
    "modular-vision:oracle-vehicles": "vehicles",
    "modular-oracle": "all perception",
}
"""The agents that replace one of modular-vision's perception outputs (or all of them) with
the ground truth (:mod:`agents.modular.hybrid`), and the stage each one makes perfect."""


def stage_attribution(results: list[ComparisonResult], variant: str) -> list[str]:
    """Markdown: which perception stage costs modular-vision what, on ``variant`` (issue 21's
    debuggability and domain-knowledge columns; empty without modular-vision and at least one
    of :data:`STAGE_AGENTS`).

    A failure is an episode that was not completed (a collision, leaving the road, a timeout
    short of the goal). Each of modular-vision's failed seeds is attributed by which agents of
    :data:`STAGE_AGENTS` complete that seed: ``lanes`` (ground-truth lanes alone fix it),
    ``vehicles`` (ground-truth vehicles alone fix it), ``either``, ``both`` (only the full
    oracle perception fixes it), or ``planning/control`` (not even the full oracle fixes it);
    a stage whose agent was not driven is left out of the attribution. Beside it, the paired
    score difference of each agent against modular-vision: what making that stage perfect
    gains.
    """
    here = {r.summary.agent: r for r in results if r.variant == variant}
    vision = here.get(REFERENCE_AGENT)
    swaps = {agent: stage for agent, stage in STAGE_AGENTS.items() if agent in here}
    if vision is None or not swaps:
        return []
    completed = {
        agent: seed_means([here[agent]], "completed") for agent in [REFERENCE_AGENT, *swaps]
    }
    failed = [seed for seed, done in completed[REFERENCE_AGENT].items() if done < 1]

    def fixes(agent: str, seed: int) -> bool | None:
        done = completed.get(agent, {}).get(seed)
        return None if done is None else done >= 1

    counts: dict[str, int] = {}
    for seed in failed:
        lanes = fixes("modular-vision:oracle-lanes", seed)
        vehicles = fixes("modular-vision:oracle-vehicles", seed)
        oracle = fixes("modular-oracle", seed)
        if lanes and vehicles:
            cause = "either"
        elif lanes:
            cause = "lanes"
        elif vehicles:
            cause = "vehicles"
        elif oracle:
            cause = "both"
        elif oracle is False:
            cause = "planning/control"
        else:
            cause = "not attributed"
        counts[cause] = counts.get(cause, 0) + 1
    n = len(vision.rows)
    lines = [
        f"Which stage costs {REFERENCE_AGENT} what: each stage's output replaced by the ground "
        "truth on the same seeds. Score gain: paired difference against "
        f"{REFERENCE_AGENT}, mean [95% paired bootstrap CI].",
        "",
        "| ground truth for | agent | completed | score gain |",
        "|---|---|---|---|",
    ]
    for agent, stage in swaps.items():
        gain = paired_difference([here[agent]], vision, "score")
        rate = format_ci(here[agent].summary.metrics["completed"], 2)
        lines.append(f"| {stage} | {agent} | {rate} | {format_ci(gain, 3, signed=True)} |")
    lines += [
        "",
        f"{REFERENCE_AGENT} failed {len(failed)} of {n} episodes; attributed by the seeds the "
        "agents above complete: "
        + (
            ", ".join(f"{cause} {k} ({k / len(failed):.0%})" for cause, k in counts.items())
            if failed
            else "nothing to attribute"
        )
        + ".",
        "",
    ]
    return lines


def learning_curve(results: list[ComparisonResult], variant: str, path: Path) -> Path | None:
    """Score, completion and collision vs expert labels of the CNN checkpoints of one variant,
    one line per series, the modular agents' levels as reference lines (None when no series has
    2 points)."""
    series = _curve_points(results, variant)
    if not any(len(points) >= 2 for points in series.values()):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, metric in zip(axes, ("score", "completed", "collided"), strict=True):
        for name, points in series.items():
            xs = [p.labels for p in points]
            stats = [getattr(p, metric) for p in points]
            errs = list(zip(*(_err(s) for s in stats), strict=True))
            bars = ax.errorbar(
                xs, [s.mean for s in stats], yerr=errs, marker="o", capsize=3, label=name
            )
            if any(len(p.runs) > 1 for p in points):  # each training seed's own figure, faint
                ax.scatter(
                    [n for p in points for n in p.run_labels],
                    [r.summary.metrics[metric].mean for p in points for r in p.runs],
                    s=14,
                    alpha=0.4,
                    color=bars.lines[0].get_color(),
                )
        for r in results:
            if r.variant == variant and r.summary.agent in REFERENCE_AGENTS:
                ax.axhline(
                    r.summary.metrics[metric].mean,
                    linestyle="--",
                    color="C3" if "oracle" in r.summary.agent else "C4",
                    label=r.summary.agent,
                )
        ax.set_xscale("log")
        ax.set_xlabel("expert-labelled frames")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.suptitle(f"learning curve on {variant} (runs pooled, 95% CI; dots: each run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def crossover_lines(results: list[ComparisonResult], variant: str) -> list[str]:
    """Markdown: each series' points and, by the one rule of :mod:`driving.crossover`, its
    crossover with modular-vision on the driving score (paired by episode seed)."""
    series = _curve_points(results, variant)
    if not series:
        return []
    lines = [
        "| series | expert labels | runs | score [95% CI] | completed [95% CI] | "
        "collided [95% CI] | episodes | score, each run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, points in series.items():
        for p in points:
            each = ", ".join(f"{r.summary.metrics['score'].mean:.3f}" for r in p.runs)
            lines.append(
                f"| {name} | {p.labels_text()} | {len(p.runs)} | {format_ci(p.score, 3)} | "
                f"{format_ci(p.completed)} | {format_ci(p.collided)} | {p.completed.n} | {each} |"
            )
    lines.append("")
    reference = _reference(results, variant)
    if reference is None:
        return [*lines, f"No {REFERENCE_AGENT} result: no crossover computed.", ""]
    metrics = reference.summary.metrics
    lines += [
        f"{REFERENCE_AGENT}: score {format_ci(metrics['score'], 3)}, completed "
        f"{format_ci(metrics['completed'])}, collided {format_ci(metrics['collided'])}.",
        "",
    ]
    for name, points in series.items():
        diffs = [(p.labels, paired_difference(p.runs, reference, "score")) for p in points]
        intervals = [BudgetInterval.from_stat(n, d) for n, d in diffs if d.ci95 is not None]
        lines += [f"### {name} vs {REFERENCE_AGENT}", ""]
        if not intervals:
            lines += ["Fewer than 2 paired episodes at every budget: no verdict.", ""]
            continue
        crossover = find_crossover(intervals)
        lines += [*crossover_markdown(crossover, candidate=name, reference=REFERENCE_AGENT), ""]
    return lines


def cost_table(results: list[ComparisonResult]) -> str:
    """Markdown table of the cost columns, one row per agent (main variant)."""
    lines = [
        "| agent | parameters | decision latency ms [95% CI] | training frames | expert labels |",
        "| --- | --- | --- | --- | --- |",
    ]
    seen = set()
    for r in results:
        s = r.summary
        if s.agent in seen:
            continue
        seen.add(s.agent)
        frames = s.agent_description.get("training_frames", 0)
        lines.append(
            f"| {s.agent} | {s.parameters:,} | {format_ci(s.metrics['latency_ms'])} | "
            f"{frames:,} | {s.expert_labels:,} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class WrittenReport:
    """What :func:`write_report` wrote.

    Attributes:
        path: ``report.md``.
        plots: the PNG plots.
        main_lines: the main variant's paired table and crossover, as in the report (for the
            terminal).
    """

    path: Path
    plots: list[Path]
    main_lines: list[str]


def write_report(
    results: list[ComparisonResult],
    out: Path,
    *,
    title: str,
    command: str,
    header_lines: Sequence[str],
) -> WrittenReport:
    """Write ``report.md`` and its plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = [bar_plot(results, m, out / f"bars_{m}.png") for m in BAR_METRICS]
    variants = list(dict.fromkeys(r.variant for r in results))
    curve = learning_curve(results, variants[0], out / "learning_curve.png")
    if curve:
        plots.append(curve)
    parts = [f"# {title}", "", f"Command: `{command}`", "", *header_lines, ""]
    paired = {variant: paired_markdown(results, variant) for variant in variants}
    for variant in variants:
        rows = [r for r in results if r.variant == variant]
        parts += [
            f"## {variant}",
            "",
            "mean [95% CI] over the episodes",
            "",
            comparison_markdown([r.summary for r in rows], [result_name(r) for r in rows]),
            "",
            *paired[variant],
            "",
            *stage_attribution(results, variant),
        ]
    curve_text = crossover_lines(results, variants[0])
    if curve_text:
        parts += ["## Learning curve (expert labels)", "", *curve_text]
    parts += ["## Cost", "", cost_table(results), ""]
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(parts))
    return WrittenReport(report, plots, [*paired[variants[0]], "", *curve_text])
