"""The comparison table: one row per agent, the headline metrics with their 95% intervals."""

from __future__ import annotations

import sys
from typing import Any

from driving.evaluate import format_ci

COLUMNS: dict[str, tuple[str, int]] = {
    "completed": ("completed", 2),
    "collided": ("collided", 2),
    "mean_speed_mps": ("speed m/s", 1),
    "lane_offset_m": ("lane offset m", 2),
    "autonomy": ("autonomy", 2),
    "latency_ms": ("latency ms", 2),
}
"""Summary metric -> (column title, decimals)."""


def comparison_rows(summaries: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows ``[agent, scenario, n, metric cells...]`` for evaluation summaries."""
    rows = []
    for s in summaries:
        cells = [format_ci(s["metrics"][m], digits) for m, (_, digits) in COLUMNS.items()]
        rows.append([s["agent"], s["scenario"]["name"], str(s["episodes"]), *cells])
    return rows


def comparison_markdown(summaries: list[dict[str, Any]]) -> str:
    """The comparison as a markdown table (mean [95% CI])."""
    header = ["agent", "scenario", "episodes", *(title for title, _ in COLUMNS.values())]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(summaries)]
    return "\n".join(lines)


def print_comparison(summaries: list[dict[str, Any]], title: str, file=sys.stdout) -> None:
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
