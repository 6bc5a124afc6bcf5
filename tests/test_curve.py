"""Learning curves: BC vs DAgger against expert labels, and the crossover with modular-vision."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from driving.comparison import ComparisonResult
from driving.evaluation import EvaluationSummary
from driving.files import copy_tree
from driving.report import crossover_lines
from driving.stats import Stat, pool_rates, summarize, wilson_interval
from tests.support import TINY, shipped_config

SEEDS = list(range(1_000_000, 1_000_100))
VISION = np.random.default_rng(0).uniform(0.6, 0.9, len(SEEDS))
"""modular-vision's per-episode scores: what a seed decides (traffic) varies a lot."""


def _result(
    agent: str,
    series: str | None,
    labels: int,
    offset: float,
    point: int | None = None,
    completed: float = 1.0,
    noise: float = 0.005,
):
    """A result whose per-episode score is modular-vision's plus ``offset`` (and small noise)."""
    rng = np.random.default_rng(abs(hash((agent, labels))) % 2**32)
    scores = VISION + offset + rng.normal(0.0, noise, len(SEEDS))
    done = np.arange(len(SEEDS)) < round(completed * len(SEEDS))
    rows = [
        {"seed": float(seed), "score": float(v), "completed": float(c), "collided": float(not c)}
        for seed, v, c in zip(SEEDS, scores, done, strict=True)
    ]
    summary = EvaluationSummary(
        agent=agent,
        agent_description={"expert_labels": labels} if labels else {},
        parameters=0,
        scenario={"name": "highway"},
        overrides={},
        seeds=SEEDS,
        episodes=len(SEEDS),
        workers=1,
        wall_time_s=0.0,
        metrics={
            "score": summarize(scores, rate=False),
            "completed": summarize(done, rate=True),
            "collided": summarize(~done, rate=True),
        },
        versions={},
        date="",
    )
    return ComparisonResult("main: highway", series, point, summary, rows)


def test_crossover_is_the_fewest_labels_not_worse_than_modular_vision_on_paired_scores():
    results = [
        _result("cnn:a", "BC", 1000, -0.10),
        _result("cnn:b", "BC", 2000, -0.005),  # within the 0.02 margin: not worse
        _result("cnn:c", "BC", 4000, +0.05),
        _result("cnn:d", "DAgger", 2000, -0.05, completed=1.0),
        _result("modular-vision", None, 0, 0.0, noise=0.0),
    ]
    text = "\n".join(crossover_lines(results, "main: highway"))
    bc = text[text.index("### BC vs") : text.index("### DAgger vs")]
    assert "Not worse: from 2,000 expert labels. Better: from 4,000 expert labels." in bc
    assert [line.rsplit("|", 2)[1].strip() for line in bc.splitlines() if line.startswith("| 1,")]
    for labels, verdict in (("1,000", "worse"), ("2,000", "not worse"), ("4,000", "better")):
        (row,) = [line for line in bc.splitlines() if line.startswith(f"| {labels} |")]
        assert row.endswith(f"| 100 | {verdict} |"), row
    dagger = text[text.index("### DAgger vs") :]
    assert "Not worse: not reached within 2,000 labels." in dagger
    assert "−0.02 (the non-inferiority margin" in text  # the rule is printed with its margin
    assert text.count("| BC |") == 3 and text.count("| DAgger |") == 1


def test_runs_with_the_same_labels_pool_into_one_point_paired_per_seed():
    results = [
        _result("cnn:s0", "DAgger", 2000, +0.02),
        _result("cnn:s1", "DAgger", 2000, -0.04),  # another training seed, same labels
        _result("modular-vision", None, 0, 0.0, noise=0.0),
    ]
    text = "\n".join(crossover_lines(results, "main: highway"))
    pooled = pool_rates([Stat(0.9, None, 100), Stat(0.8, None, 100)])
    assert pooled.mean == 0.85 and pooled.n == 200
    assert pooled.ci95 == wilson_interval(170, 200)
    assert "| DAgger | 2,000 | 2 |" in text and "| 200 |" in text  # 200 episodes pooled
    # the two runs average per seed (-0.01, within the margin); s1 alone would be worse
    (row,) = [line for line in text.splitlines() if line.startswith("| 2,000 |")]
    assert row.endswith("| 100 | not worse |"), row
    alone = "\n".join(crossover_lines([results[1], results[2]], "main: highway"))
    assert "| 100 | worse |" in alone


def test_runs_of_one_point_pool_even_when_their_label_counts_differ():
    # DAgger rounds whose episodes end early add fewer frames, a different number per seed
    results = [
        _result("cnn:s0p1", "DAgger", 57_714, -0.1, point=1),
        _result("cnn:s1p1", "DAgger", 57_714, -0.1, point=1),
        _result("cnn:s0p2", "DAgger", 65_310, -0.1, point=2),
        _result("cnn:s1p2", "DAgger", 65_502, -0.1, point=2),
        _result("modular-vision", None, 0, 0.0, noise=0.0),
    ]
    text = "\n".join(crossover_lines(results, "main: highway"))
    assert "| DAgger | 57,714 | 2 |" in text
    assert "| DAgger | 65,310-65,502 | 2 |" in text
    assert "Not worse: not reached within 65,406 labels." in text  # the last point's mean
    results[3].point = None  # without a point, runs pool by their label count only
    assert text.count("| DAgger |") == 2
    assert "\n".join(crossover_lines(results, "main: highway")).count("| DAgger |") == 3


def test_the_report_leads_with_the_score_and_pairs_every_agent_with_modular_vision(tmp_path):
    from driving.report import write_report

    results = [
        _result("modular-vision", None, 0, 0.0, noise=0.0),
        _result("modular-oracle", None, 0, +0.03),
        _result("cnn:x", None, 50_000, -0.08, completed=0.9),
    ]
    for r in results:
        r.summary.metrics |= {m: Stat(1.0, None, 100) for m in ("mean_speed_mps", "lane_offset_m")}
        r.summary.metrics |= {m: Stat(1.0, None, 100) for m in ("autonomy", "latency_ms")}
        for row in r.rows:
            row |= {"mean_speed_mps": 20.0, "lane_offset_m": 0.1}
    written = write_report(results, tmp_path, title="t", command="c", header_lines=[])
    text = written.path.read_text()
    assert written.main_lines[-1] in text and written.main_lines[0] in text
    assert "| agent | scenario | episodes | score |" in text
    (oracle,) = [line for line in text.splitlines() if line.startswith("| modular-oracle | 100 |")]
    low, high = (float(x) for x in oracle.split("|")[3].split("[")[1].rstrip("] ").split(","))
    assert 0.025 < low <= 0.03 <= high < 0.035  # +0.03 paired: narrow whatever the seeds spread
    (cnn,) = [line for line in text.splitlines() if line.startswith("| cnn:x | 100 |")]
    assert cnn.split("|")[4].strip().startswith("-0.10")  # completed 0.9 against 1.0
    assert "Not worse: not reached within 50,000 labels." in text  # the demo's one-point rule


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
