"""Learning curves: BC vs DAgger against expert labels, and the crossover with modular-vision."""

from __future__ import annotations

import json

import pytest
import yaml

from driving.comparison import ComparisonResult
from driving.evaluation import EvaluationSummary
from driving.files import copy_tree
from driving.report import crossover_lines
from driving.stats import Stat, format_ci, pool_rates, wilson_interval
from tests.support import TINY, shipped_config


def _result(
    agent: str,
    series: str | None,
    labels: int,
    completed: float,
    collided: float,
    point: int | None = None,
):
    def stat(mean: float) -> Stat:
        return Stat(mean, (max(0.0, mean - 0.1), min(1.0, mean + 0.1)), 100)

    summary = EvaluationSummary(
        agent=agent,
        agent_description={"expert_labels": labels} if series else {},
        parameters=0,
        scenario={"name": "highway"},
        overrides={},
        seeds=list(range(100)),
        episodes=100,
        workers=1,
        wall_time_s=0.0,
        metrics={"completed": stat(completed), "collided": stat(collided)},
        versions={},
        date="",
    )
    return ComparisonResult("main: highway", series, point, summary)


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


def test_runs_with_the_same_labels_pool_their_episodes_into_one_point():
    results = [
        _result("cnn:s0", "DAgger", 2000, 0.90, 0.05),
        _result("cnn:s1", "DAgger", 2000, 0.80, 0.10),  # another training seed, same labels
        _result("modular-vision", None, 0, 0.85, 0.08),
    ]
    text = "\n".join(crossover_lines(results, "main: highway"))
    pooled = pool_rates([Stat(0.9, None, 100), Stat(0.8, None, 100)])
    assert pooled.mean == 0.85 and pooled.n == 200
    assert pooled.ci95 == wilson_interval(170, 200)
    assert f"| DAgger | 2,000 | 2 | {format_ci(pooled)} |" in text
    assert "| 200 | 0.90, 0.80 |" in text
    # pooled (0.85 completed, 0.075 collided) it is as good as modular-vision; s1 alone is not
    assert "- DAgger: crossover at or below 2,000" in text


def test_runs_of_one_point_pool_even_when_their_label_counts_differ():
    # DAgger rounds whose episodes end early add fewer frames, a different number per seed
    results = [
        _result("cnn:s0p1", "DAgger", 57_714, 0.90, 0.05, point=1),
        _result("cnn:s1p1", "DAgger", 57_714, 0.80, 0.10, point=1),
        _result("cnn:s0p2", "DAgger", 65_310, 0.70, 0.10, point=2),
        _result("cnn:s1p2", "DAgger", 65_502, 0.60, 0.20, point=2),
        _result("modular-vision", None, 0, 0.99, 0.0),
    ]
    text = "\n".join(crossover_lines(results, "main: highway"))
    assert "| DAgger | 57,714 | 2 |" in text
    assert "| DAgger | 65,310-65,502 | 2 |" in text and "| 200 | 0.70, 0.60 |" in text
    assert "no crossover within the budget tried (up to 65,310-65,502 labels)" in text
    results[3].point = None  # without a point, runs pool by their label count only
    assert text.count("| DAgger |") == 2
    assert "\n".join(crossover_lines(results, "main: highway")).count("| DAgger |") == 3


@pytest.mark.slow
def test_curve_runs_bc_and_dagger_and_reports_both_series(driving_cli, tmp_path):
    recipe = shipped_config("curve_highway")  # experiments/curve_highway.yaml, budget cut
    recipe |= {
        "scenario": "highway",
        "overrides": TINY,
        "first_episodes": 2,
        "episodes_per_point": 2,
        "points": 2,
        "first_epochs": 1,
        "epochs_per_point": 1,
        "finetune_lr": 0.0005,
        "dagger_noise_steer": 0.05,
        "seeds": [0, 5],
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
    assert "| DAgger | " in report and "| 2 |" in report  # two seeds pooled per point
    assert (out / "learning_curve.png").stat().st_size > 0
    points = [(r["series"], r["point"]) for r in json.loads((out / "results.json").read_text())]
    assert points.count(("BC", 0)) == 1 and points.count(("BC", 2)) == 2
    assert points.count(("DAgger", 1)) == 2 and points.count(("DAgger", 2)) == 2
    bc2 = json.loads((out / "data" / "bc-2" / "manifest.json").read_text())
    assert bc2["seeds"]["done"] == [0, 1, 2, 3, 4, 5]  # nested: bc-1's seeds plus two more
    point = {("bc", 0): out / "bc" / "point-0" / "checkpoints" / "last.ckpt"}
    first = yaml.safe_load((out / "bc" / "point-0" / "train.yaml").read_text())
    assert first["model"]["lr"] == 0.002  # point 0 trains at the train config's rate
    for seed in (0, 5):
        point["dagger", 0, seed] = point["bc", 0, seed] = point["bc", 0]
        for method in ("bc", "dagger"):
            for k in (1, 2):
                run = out / method / f"seed-{seed}" / f"point-{k}"
                point[method, k, seed] = run / "checkpoints" / "last.ckpt"
                # every later point fine-tunes the one before it, with its chain's seed
                train = yaml.safe_load((run / "train.yaml").read_text())
                assert train["model"]["init_from"] == str(point[method, k - 1, seed])
                assert train["trainer"]["max_epochs"] == 1 and train["seed_everything"] == seed
                assert train["model"]["lr"] == 0.0005
        dagger = json.loads((out / "data" / f"dagger-seed-{seed}" / "manifest.json").read_text())
        assert [e.get("dagger_round") for e in dagger["episodes"]] == [None, None, 1, 1, 2, 2]
        noise = [e["noise"]["std"]["steer"] for e in dagger["episodes"] if e.get("dagger_round")]
        assert noise == [0.05] * 4  # on the rounds' executed steering only
        # DAgger's round k is driven by the chain's point k - 1
        drivers = {e.get("dagger_round"): e.get("policy") for e in dagger["episodes"]}
        assert drivers[1] == str(point["dagger", 0, seed])
        assert drivers[2] == str(point["dagger", 1, seed])
    curve_again = driving_cli(["curve", "--config", str(path)])  # every point is there: no work
    assert curve_again.returncode == 0, curve_again.stderr[-3000:]
    assert json.loads((out / "data" / "dagger-seed-5" / "manifest.json").read_text()) == dagger
    assert curve_again.stdout.count("reused") == 1 + 4 * 2 + 2  # no evaluation driven again
    fresh = driving_cli(["curve", "--config", str(path), "--fresh"])
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert "reused" not in fresh.stdout  # every checkpoint evaluated again, nothing retrained
    assert json.loads((out / "data" / "dagger-seed-5" / "manifest.json").read_text()) == dagger


def test_curve_bad_recipe_is_a_one_line_error(tmp_path, capsys):
    from driving.commands import main  # in-process: the subprocess contract is tested elsewhere

    path = tmp_path / "bad.yaml"
    for text, needle in [
        ("points: 0\n", "points"),
        ("pointz: 3\n", "pointz"),
        ("finetune_lr: -1\n", "finetune_lr"),
        ("seeds: [1, 1]\n", "seeds"),
        ("dagger_noise_steer: -0.1\n", "dagger_noise_steer"),
    ]:
        path.write_text(text)
        assert main(["curve", "--config", str(path)]) == 2, text
        (line,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert line.startswith("driving curve: error: ") and needle in line, line


def test_a_dataset_copy_cut_short_is_never_taken_for_a_dataset(tmp_path):
    source, target = tmp_path / "bc-0", tmp_path / "bc-1"
    (source / "shards").mkdir(parents=True)
    (source / "manifest.json").write_text("{}")
    stale = tmp_path / ".tmp-bc-1"  # what a killed copy leaves behind
    stale.mkdir()
    (stale / "junk").write_text("half a shard")
    copy_tree(source, target)
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "shards"]
    assert not stale.exists()
