"""The comparison report: markdown tables and plots from evaluation summaries.

Plots (matplotlib, PNG):

- ``bars_<metric>.png``: one bar per agent and scenario variant, with its 95% interval;
- ``learning_curve.png``: when several CNN checkpoints trained on different numbers of expert
  labels are compared, completion and collision rate against labelled frames, with the
  modular agents' levels as reference lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from driving.comparison_table import COLUMNS, comparison_markdown

BAR_METRICS = ("completed", "collided", "mean_speed_mps")
REFERENCE_AGENTS = ("modular-oracle", "modular-vision")


def _err(stat: dict[str, Any]) -> tuple[float, float]:
    if stat["mean"] is None or not stat["ci95"]:
        return 0.0, 0.0
    # max(0, .) absorbs rounding: Wilson's bound at a rate of 1.0 can come out as 0.9999999
    return max(0.0, stat["mean"] - stat["ci95"][0]), max(0.0, stat["ci95"][1] - stat["mean"])


def bar_plot(results: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Bars of ``metric`` per agent, grouped by scenario variant, with 95% intervals."""
    variants = list(dict.fromkeys(r["variant"] for r in results))
    agents = list(dict.fromkeys(r["summary"]["agent"] for r in results))
    width = 0.8 / max(len(agents), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(variants) * max(1, len(agents) / 3)), 4))
    for i, agent in enumerate(agents):
        xs, ys, errs = [], [], ([], [])
        for j, variant in enumerate(variants):
            for r in results:
                if r["variant"] == variant and r["summary"]["agent"] == agent:
                    stat = r["summary"]["metrics"][metric]
                    if stat["mean"] is None:
                        continue
                    xs.append(j + (i - (len(agents) - 1) / 2) * width)
                    ys.append(stat["mean"])
                    lo, hi = _err(stat)
                    errs[0].append(lo)
                    errs[1].append(hi)
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=agent)
    ax.set_xticks(range(len(variants)), variants)
    title = COLUMNS.get(metric, (metric, 2))[0]
    ax.set_ylabel(title)
    n = results[0]["summary"]["episodes"] if results else 0
    ax.set_title(f"{title} (mean, 95% CI, {n} episodes each)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curve(results: list[dict[str, Any]], variant: str, path: Path) -> Path | None:
    """Completion/collision vs expert labels for CNN checkpoints of one variant (None if <2)."""
    cnn = [
        r
        for r in results
        if r["variant"] == variant
        and r["summary"]["agent"].startswith("cnn:")
        and r["summary"]["agent_description"].get("expert_labels")
    ]
    if len({r["summary"]["agent_description"]["expert_labels"] for r in cnn}) < 2:
        return None
    cnn.sort(key=lambda r: r["summary"]["agent_description"]["expert_labels"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("completed", "collided"), strict=True):
        xs = [r["summary"]["agent_description"]["expert_labels"] for r in cnn]
        stats = [r["summary"]["metrics"][metric] for r in cnn]
        errs = list(zip(*(_err(s) for s in stats), strict=True))
        ax.errorbar(
            xs, [s["mean"] for s in stats], yerr=errs, marker="o", capsize=3, label="CNN (BC)"
        )
        for r in results:
            if r["variant"] == variant and r["summary"]["agent"] in REFERENCE_AGENTS:
                ax.axhline(
                    r["summary"]["metrics"][metric]["mean"],
                    linestyle="--",
                    color="C1" if "oracle" in r["summary"]["agent"] else "C2",
                    label=r["summary"]["agent"],
                )
        ax.set_xscale("log")
        ax.set_xlabel("expert-labelled training frames")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.suptitle(f"learning curve on {variant} (95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cost_table(results: list[dict[str, Any]]) -> str:
    """Markdown table of the cost columns, one row per agent (main variant)."""
    lines = [
        "| agent | parameters | decision latency ms [95% CI] | training frames | expert labels |",
        "| --- | --- | --- | --- | --- |",
    ]
    seen = set()
    for r in results:
        s = r["summary"]
        if s["agent"] in seen:
            continue
        seen.add(s["agent"])
        desc = s.get("agent_description", {})
        lat = s["metrics"]["latency_ms"]
        lat_text = f"{lat['mean']:.2f}" + (
            f" [{lat['ci95'][0]:.2f}, {lat['ci95'][1]:.2f}]" if lat["ci95"] else ""
        )
        lines.append(
            f"| {s['agent']} | {s.get('parameters', 0):,} | {lat_text} | "
            f"{desc.get('training_frames', 0):,} | {desc.get('expert_labels', 0):,} |"
        )
    return "\n".join(lines)


def write_report(
    results: list[dict[str, Any]],
    out: Path,
    *,
    title: str,
    command: str,
    header_lines: Sequence[str],
) -> tuple[Path, list[Path]]:
    """Write ``report.md`` and its plots into ``out``; return the report and plot paths."""
    out.mkdir(parents=True, exist_ok=True)
    plots = [bar_plot(results, m, out / f"bars_{m}.png") for m in BAR_METRICS]
    variants = list(dict.fromkeys(r["variant"] for r in results))
    curve = learning_curve(results, variants[0], out / "learning_curve.png")
    if curve:
        plots.append(curve)
    parts = [f"# {title}", "", f"Command: `{command}`", "", *header_lines, ""]
    for variant in variants:
        summaries = [r["summary"] for r in results if r["variant"] == variant]
        parts += [
            f"## {variant}",
            "",
            "mean [95% CI] over the episodes",
            "",
            comparison_markdown(summaries),
            "",
        ]
    parts += ["## Cost", "", cost_table(results), ""]
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    report = out / "report.md"
    report.write_text("\n".join(parts))
    return report, plots
