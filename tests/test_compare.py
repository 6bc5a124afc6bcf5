"""The comparison report from tiny runs: every agent, every column, plots, W&B run on disk."""

from __future__ import annotations

import json

import yaml

from driving.comparison_table import COLUMNS
from tests.conftest import assert_one_line_error

AGENTS = ["idm", "keep-lane", "random"]


def _config(tmp_path, **extra):
    config = {
        "scenario": "highway",
        "overrides": {"vehicles_count": 8, "duration": 2},
        "episodes": 2,
        "workers": 2,
        "agents": AGENTS,
        "shifts": [
            {
                "name": "dense",
                "scenario": "highway-dense",
                "overrides": {"vehicles_count": 12, "duration": 2},
            }
        ],
        "out": str(tmp_path / "cmp"),
        **extra,
    }
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_compare_writes_report_with_every_agent_and_column(driving_cli, tmp_path):
    result = driving_cli(["compare", "--config", str(_config(tmp_path))])
    assert result.returncode == 0, result.stderr
    out = tmp_path / "cmp"
    report = (out / "report.md").read_text()
    for agent in AGENTS:
        assert f"| {agent} | highway |" in report
        assert f"| {agent} | highway-dense |" in report
    for title, _ in COLUMNS.values():
        assert title in report
    for cost in ("parameters", "decision latency", "training frames", "expert labels"):
        assert cost in report
    for metric in ("completed", "collided", "mean_speed_mps"):
        png = out / f"bars_{metric}.png"
        assert png.stat().st_size > 1000 and f"]({png.name})" in report
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 2 * len(AGENTS)
    assert all(r["summary"]["episodes"] == 2 for r in results)
    seeds = {tuple(r["summary"]["seeds"]) for r in results}
    assert len(seeds) == 1, "every agent and variant must drive the same held-out seeds"
    runs = list((out / "wandb").glob("offline-run-*"))
    assert runs and list(runs[0].glob("files/media/images/bars_completed*.png"))


def test_compare_bad_config_is_a_one_line_error(driving_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: [idm]\nepisodez: 3\n")
    assert_one_line_error(driving_cli(["compare", "--config", str(bad)]), "episodez")
    assert_one_line_error(
        driving_cli(["compare", "--config", str(_config(tmp_path, agents=["idm", "pilot"]))]),
        "unknown agent 'pilot'",
    )
    assert_one_line_error(
        driving_cli(["compare", "--config", str(tmp_path / "missing.yaml")]), "missing.yaml"
    )
