"""Learning curves: BC vs DAgger against expert labels, and the crossover with modular-vision."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from agents.checkpoint import load_policy
from driving.comparison import ComparisonResult
from driving.evaluation import EvaluationSummary
from driving.files import copy_tree
from driving.report import COLUMNS, crossover_lines
from driving.stats import Stat, pool_rates, summarize, wilson_interval
from driving.train.curve import load_curve_config
from tests.support import REPO, TINY, shipped_config

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


def test_a_curve_points_rows_name_its_series_and_labels_not_only_its_checkpoint(tmp_path):
    from driving.report import write_report

    results = [
        _result("modular-vision", None, 0, 0.0, noise=0.0),
        _result("cnn:runs/store/points/k1/last.ckpt", "BC", 1000, -0.5),
        _result("cnn:runs/store/points/k1/last.ckpt", "DAgger", 1000, -0.5),  # shared opening
        _result("cnn:runs/store/points/k2/last.ckpt", "DAgger", 3000, -0.2),
    ]
    for r in results:
        r.summary.metrics |= {
            m: Stat(1.0, None, 100) for m in COLUMNS if m not in r.summary.metrics
        }
        for row in r.rows:
            row |= {"mean_speed_mps": 20.0, "lane_offset_m": 0.1}
    text = write_report(results, tmp_path, title="t", command="c", header_lines=[]).path.read_text()
    lines = text.splitlines()
    for name in ("BC, 1,000 labels", "DAgger, 1,000 labels", "DAgger, 3,000 labels"):
        # once in the comparison table, once in the paired table
        assert len([x for x in lines if x.startswith(f"| {name}: cnn:runs/store/")]) == 2, name
    assert any(x.startswith("| modular-vision | highway | 100 |") for x in lines)


@pytest.mark.slow
def test_curve_runs_bc_and_dagger_and_reports_both_series(driving_cli, tmp_path):
    recipe = shipped_config("curve_highway")  # experiments/curve_highway.yaml, budget cut
    store = tmp_path / "store"
    recipe |= {
        "overrides": TINY,
        "budgets": [20, 40],
        "steps": 3,
        "seeds": [0, 5],
        "series": ["BC", "DAgger"],
        "dagger_noise_steer": 0.05,
        "episodes": 2,
        "workers": 1,
        "out": str(tmp_path / "curve"),
        "store": str(store),
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
    results = json.loads((out / "results.json").read_text())
    points = [(r["series"], r["point"]) for r in results]
    assert points.count(("BC", 0)) == 2 and points.count(("BC", 1)) == 2
    assert points.count(("DAgger", 0)) == 2 and points.count(("DAgger", 1)) == 2
    labels = {
        (r["series"], r["point"]): r["summary"]["agent_description"]["expert_labels"]
        for r in results
        if r["series"]
    }
    assert labels["BC", 0] == 20 and labels["BC", 1] == 40  # exactly the budget
    assert labels["DAgger", 1] == 40
    runs = sorted((store / "points").iterdir())
    assert len(runs) == 2 * 2 + 2  # BC's two budgets and DAgger's second, per seed
    for run in runs:  # every point from scratch, the same steps, exactly its labels
        train = yaml.safe_load((run / "train.yaml").read_text())
        assert train["model"]["init_from"] is None and train["trainer"]["max_steps"] == 3
        assert train["data"]["val_fraction"] == 0.0 and train["data"]["max_frames"] in (20, 40)
        assert (run / "done").exists() and (run / "checkpoints" / "last.ckpt").is_file()
    aggregates = [
        json.loads((d / "dataset" / "manifest.json").read_text())
        for d in (store / "dagger").iterdir()
        if json.loads((d / "key.json").read_text())["budgets"] == [20, 40]
    ]
    assert len(aggregates) == 2  # one per seed
    for dagger in aggregates:
        rounds = [e.get("dagger_round") for e in dagger["episodes"]]
        assert rounds[0] is None and rounds[-1] == 1 and dagger["counts"]["frames"] >= 40
        noise = [e["noise"]["std"]["steer"] for e in dagger["episodes"] if e.get("dagger_round")]
        assert set(noise) == {0.05}  # on the rounds' executed steering only
    ledger = sorted((out / "points").iterdir())  # 2 references, 3 points per seed
    assert len(ledger) == 2 + 2 * 3 and all((e / "entry.json").is_file() for e in ledger)
    for run in runs:  # each point's network is kept beside its evaluation: the same weights
        trained = load_policy(run / "checkpoints" / "last.ckpt").state_dict
        (kept,) = [e for e in ledger if _kept_weights_equal(e, trained)]
        assert json.loads((kept / "entry.json").read_text())["key"]["point"]["data"]
    dagger_episodes = {d.name: _episodes(d / "dataset") for d in (store / "dagger").iterdir()}
    curve_again = driving_cli(["curve", "--config", str(path)])  # every point is there: no work
    assert curve_again.returncode == 0, curve_again.stderr[-3000:]
    assert curve_again.stdout.count(": kept (") == 2 + 2 * 3  # nothing trained or driven again
    assert "): reused" not in curve_again.stdout and "same agent" not in curve_again.stdout
    assert "DAgger round" not in curve_again.stdout + curve_again.stderr
    assert (out / "report.md").read_text().count("| DAgger | ") == report.count("| DAgger | ")
    # --series: this run builds and reports DAgger only (its opening point is BC's, reused)
    only = driving_cli(["curve", "--config", str(path), "--series", "DAgger", "--out", str(out)])
    assert only.returncode == 0, only.stderr[-3000:]
    assert only.stdout.count(": kept (") == 2 + 2 * 2  # references, DAgger's two points per seed
    only_report = (out / "report.md").read_text()
    assert "| DAgger | " in only_report and "| BC | " not in only_report
    assert driving_cli(["curve", "--config", str(path)]).returncode == 0  # the whole report again
    # another recipe sharing the store: one more budget and the DART series reuse the points
    wider = recipe | {"budgets": [20, 40, 60], "seeds": [0], "series": ["BC", "DART"]}
    wider |= {"out": str(tmp_path / "wider"), "time_limit": 1e-6}  # minutes: no new point
    wider_path = tmp_path / "wider.yaml"
    wider_path.write_text(yaml.safe_dump(wider))
    more = driving_cli(["curve", "--config", str(wider_path)])
    assert more.returncode == 0, more.stderr[-3000:]
    assert more.stdout.count("(same agent, code, seeds)") == 2  # the references' evaluations
    assert "): reused" not in more.stdout  # no point started after the time limit
    wider_report = (tmp_path / "wider" / "report.md").read_text()
    assert "**Not built yet**" in wider_report and "DART 60 labels, seed 0" in wider_report
    more = driving_cli(["curve", "--config", str(wider_path), "--time-limit", "600"])
    assert more.returncode == 0, more.stderr[-3000:]
    assert more.stdout.count(": kept (") == 2  # its references
    assert more.stdout.count("): reused") == 2  # seed 0's BC points of 20 and 40 labels
    assert more.stdout.count("(same agent, code, seeds)") == 2  # their evaluations too
    assert "Not built yet" not in (tmp_path / "wider" / "report.md").read_text()
    # a fresh machine: the committed OUT without the store; seed 5's last DAgger point is lost
    shutil.rmtree(store)
    (lost,) = [
        e
        for e in ledger
        if (key := json.loads((e / "entry.json").read_text())["key"]).get("point")
        and key["point"]["data"].get("kind") == "dagger"
        and key["point"]["train"]["seed_everything"] == 5
    ]
    shutil.rmtree(lost)
    resumed = driving_cli(["curve", "--config", str(path)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.count(": kept (") == 2 + 2 * 3 - 1
    (rebuilt,) = [
        d
        for d in (store / "dagger").iterdir()
        if d.name in dagger_episodes
        and json.loads((d / "key.json").read_text())["budgets"] == [20, 40]
    ]
    assert _episodes(rebuilt / "dataset") == dagger_episodes[rebuilt.name]  # driven identically
    assert len(list((store / "points").iterdir())) == 1  # only the lost point trained again
    assert (lost / "entry.json").is_file()


def _kept_weights_equal(entry, state_dict) -> bool:
    policy = entry / "policy.ckpt"
    if not policy.is_file():
        return False
    kept = load_policy(policy).state_dict
    return kept.keys() == state_dict.keys() and all(
        torch.equal(kept[k], state_dict[k]) for k in kept
    )


def _episodes(dataset) -> tuple[list, list]:
    """A dataset's episode records (seeds, steps, returns, provenance) and its shards' SHA-256."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    return manifest["episodes"], [shard["sha256"] for shard in manifest["shards"]]


def test_curve_bad_recipe_is_a_one_line_error(tmp_path, capsys):
    from driving.commands import main  # in-process: the subprocess contract is tested elsewhere

    path = tmp_path / "bad.yaml"
    for text, needle in [
        ("steps: 0\n", "steps"),
        ("pointz: 3\n", "pointz"),
        ("budgets: [3000, 1000]\n", "budgets"),
        ("series: [BC, PPO]\n", "series"),
        ("seeds: [1, 1]\n", "seeds"),
        ("dagger_noise_steer: -0.1\n", "dagger_noise_steer"),
        ("overrides: {nuisance: {kind: blur, severity: 1}}\n", "nuisance"),
        ("time_limit: 0\n", "time_limit"),
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


def test_curve_racetrack_runs_on_the_steer_only_circuit(driving_cli, tmp_path):
    recipe = shipped_config("curve_racetrack")  # experiments/curve_racetrack.yaml, budget cut
    recipe |= {
        "overrides": {"duration": 3},
        "budgets": [20],
        "steps": 2,
        "seeds": [0],
        "series": ["BC", "DART"],
        "episodes": 2,
        "workers": 1,
        "out": str(tmp_path / "curve"),
        "store": str(tmp_path / "store"),
    }
    path = tmp_path / "curve.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = driving_cli(["curve", "--config", str(path)])
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "curve" / "results.json").read_text())
    assert {r["summary"]["scenario"]["name"] for r in results} == {"racetrack"}
    driven = {(r["series"], r["summary"]["agent"].split(":")[0]) for r in results}
    assert {("BC", "cnn"), ("DART", "cnn"), (None, "modular-vision")} <= driven


def test_the_no_photometric_curve_is_the_highway_curve_without_its_augmentation():
    """The first highway curve's recipe, kept to be continued beside the augmented one."""
    plain, augmented = (
        load_curve_config(REPO / "experiments" / f"{name}.yaml")
        for name in ("curve_highway_no_photometric", "curve_highway")
    )
    assert augmented.train_overrides["data"]["blur_std"] > 0 and plain.train_overrides == {}
    assert plain.out != augmented.out and (REPO / plain.out / "points").is_dir()
    same = {k: v for k, v in vars(plain).items() if k not in ("train_overrides", "out")}
    assert same == {k: v for k, v in vars(augmented).items() if k in same}


def test_the_ledger_gives_back_what_it_kept_and_refuses_a_damaged_entry(tmp_path):
    from driving.evaluation import Evaluation
    from driving.train.ledger import Ledger
    from envs.errors import UserError

    ledger = Ledger(tmp_path / "points")
    key = {"point": {"labels": 1000}, "seeds": SEEDS[:3]}
    assert ledger.entry(key) is None
    result = _result("cnn:x", "BC", 1000, 0.0)
    kept = ledger.record(key, Evaluation(result.rows, result.summary), "driving curve", 1000, 0)
    assert ledger.entry(key) == kept and kept.labels == 1000 and kept.code
    back = ledger.evaluation(key)
    assert back.rows == result.rows and back.summary.to_dict() == result.summary.to_dict()
    entry_file = ledger.folder(key) / "entry.json"
    stored = json.loads(entry_file.read_text())
    entry_file.write_text(json.dumps({**stored, "key": {"point": {"labels": 3000}}}))
    with pytest.raises(UserError, match="holds another key"):
        ledger.entry(key)
    entry_file.write_text(stored["date"])  # cut short or edited by hand
    with pytest.raises(UserError, match="not a ledger entry"):
        ledger.entry(key)
