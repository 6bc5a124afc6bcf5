"""Learning curves: BC vs DAgger against expert labels, and the crossover with modular-vision."""

from __future__ import annotations

import json

import pytest
import yaml

from driving.report import crossover_lines
from tests.conftest import TINY


def _result(agent: str, series: str | None, labels: int, completed: float, collided: float):
    def stat(mean: float) -> dict:
        return {"mean": mean, "ci95": [max(0.0, mean - 0.1), min(1.0, mean + 0.1)], "n": 100}

    return {
        "variant": "main: highway",
        "series": series,
        "summary": {
            "agent": agent,
            "agent_description": {"expert_labels": labels} if series else {},
            "metrics": {"completed": stat(completed), "collided": stat(collided)},
        },
    }


def test_crossover_is_the_fewest_labels_at_least_as_good_as_modular_vision():
    results = [
        _result("cnn:a", "BC", 1000, 0.50, 0.30),
        _result("cnn:b", "BC", 2000, 0.85, 0.10),  # completes more but crashes more: not yet
        _result("cnn:c", "BC", 4000, 0.90, 0.05),
        _result("cnn:d", "DAgger", 2000, 0.70, 0.20),
        _result("modular-vision", None, 0, 0.80, 0.08),
    ]
    text = "\n".join(crossover_lines(results, "main: highway"))
    assert "- BC: crossover at 4,000 expert labels" in text
    assert "- DAgger: no crossover within the budget tried (up to 2,000 labels)" in text
    assert text.count("| BC |") == 3 and text.count("| DAgger |") == 1
    results[3] = _result("cnn:d", "DAgger", 2000, 0.95, 0.0)
    text = "\n".join(crossover_lines(results, "main: highway"))
    assert "- DAgger: crossover at or below 2,000 (the smallest budget tried) expert labels" in text


@pytest.mark.slow
def test_curve_runs_bc_and_dagger_and_reports_both_series(driving_cli, tmp_path):
    recipe = {
        "scenario": "highway",
        "overrides": TINY,
        "first_episodes": 2,
        "episodes_per_point": 2,
        "points": 2,
        "first_epochs": 1,
        "epochs_per_point": 1,
        "episodes": 2,
        "workers": 1,
        "out": str(tmp_path / "curve"),
    }
    path = tmp_path / "curve.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = driving_cli(["curve", "--config", str(path)])
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "curve"
    report = (out / "report.md").read_text()
    assert "## Learning curve (expert labels)" in report
    assert (out / "learning_curve.png").stat().st_size > 0
    series = [r["series"] for r in json.loads((out / "results.json").read_text())]
    assert series.count("BC") == 3 and series.count("DAgger") == 2
    bc2 = json.loads((out / "data" / "bc-2" / "manifest.json").read_text())
    assert bc2["seeds"]["done"] == [0, 1, 2, 3, 4, 5]  # nested: bc-1's seeds plus two more
    dagger = json.loads((out / "data" / "dagger" / "manifest.json").read_text())
    assert [e.get("dagger_round") for e in dagger["episodes"]] == [None, None, 1, 1, 2, 2]
    # every later point fine-tunes the one before it; DAgger's round k is driven by point k - 1
    point = {
        (method, k): out / method / f"point-{k}" / "checkpoints" / "last.ckpt"
        for method in ("bc", "dagger")
        for k in range(3)
    }
    point["dagger", 0] = point["bc", 0]
    for method, k in [("bc", 1), ("bc", 2), ("dagger", 1), ("dagger", 2)]:
        train = yaml.safe_load((out / method / f"point-{k}" / "train.yaml").read_text())
        assert train["model"]["init_from"] == str(point[method, k - 1])
        assert train["trainer"]["max_epochs"] == 1
    drivers = {e.get("dagger_round"): e.get("policy") for e in dagger["episodes"]}
    assert drivers[1] == str(point["dagger", 0]) and drivers[2] == str(point["dagger", 1])
    curve_again = driving_cli(["curve", "--config", str(path)])  # every point is there: no work
    assert curve_again.returncode == 0, curve_again.stderr[-3000:]
    assert json.loads((out / "data" / "dagger" / "manifest.json").read_text()) == dagger


def test_curve_bad_recipe_is_a_one_line_error(driving_cli, tmp_path):
    from tests.conftest import assert_one_line_error

    path = tmp_path / "bad.yaml"
    path.write_text("points: 0\n")
    assert_one_line_error(driving_cli(["curve", "--config", str(path)]), "points")
    path.write_text("pointz: 3\n")
    assert_one_line_error(driving_cli(["curve", "--config", str(path)]), "pointz")
