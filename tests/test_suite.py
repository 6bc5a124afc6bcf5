"""The scenario suite: per-scenario CNNs against modular-vision, clean and under nuisances."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from agents.checkpoint import load_policy
from driving.comparison import slug
from driving.crossover import winner
from driving.evaluation import read_rows
from tests.support import TINY, shipped_config


def test_winner_rule_reads_the_paired_interval():
    assert winner(0.01, 0.05) == "CNN"
    assert winner(-0.05, -0.01) == "modular-vision"
    assert winner(-0.01, 0.015) == "tie"  # inside ±0.02: equivalent
    assert winner(-0.10, 0.10) == "undecided"  # too wide to tell
    assert winner(-0.01, 0.03) == "undecided"  # reaches beyond the margin on one side


@pytest.mark.slow
def test_suite_trains_a_cnn_per_scenario_and_reports_winners_per_nuisance(driving_cli, tmp_path):
    recipe = shipped_config("compare_suite")  # experiments/compare_suite.yaml, budget cut
    store = tmp_path / "store"
    narrow = {"model": {"network": {"width": 0.25}}}
    trained = recipe["cnns"][0]  # its augmentation too (photometric and blur, on tiny frames)
    overrides = trained["train_overrides"] | narrow
    cnn = trained | {"labels": 20, "steps": 3, "train_overrides": overrides}
    recipe |= {
        "scenarios": ["highway"],
        "overrides": TINY,
        "agents": ["modular-vision", "idm"],
        "cnns": [cnn],
        "nuisances": {"kinds": ["blur"], "severities": [1]},
        "episodes": 2,
        "workers": 1,
        "out": str(tmp_path / "suite"),
        "store": str(store),
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "suite"
    earlier = _earlier_section("merge")  # left in `out` by a run on another day
    earlier.write(out)
    result = driving_cli(["suite", "--config", str(path)])
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["scenario"], r["variant"]) for r in summary] == [
        ("highway", "clean"),
        ("highway", "blur 1"),
        ("merge", "clean"),  # gathered from the earlier run, in the registry's order
    ]
    assert {r["winner"] for r in summary} <= {"CNN", "modular-vision", "tie", "undecided"}
    assert all(r["difference"]["n"] == 2 for r in summary)  # paired on the same 2 seeds
    report = (out / "report.md").read_text()
    assert "**Winner rule**" in report and "| highway | blur 1 |" in report
    assert "| merge | clean |" in report and f"Driven {earlier.date} by `earlier`" in report
    assert (out / "highway" / "report.md").is_file()
    variants = json.loads((out / "highway" / "results.json").read_text())
    driven = {(r["variant"], r["summary"]["agent"].split(":")[0]) for r in variants}
    assert ("main: highway", "idm") in driven  # privileged agents drive the clean scenario
    assert ("highway + blur 1", "idm") not in driven  # ... not the nuisances: same episodes
    assert {("highway + blur 1", "cnn"), ("highway + blur 1", "modular-vision")} <= driven
    kept = out / "highway" / "evaluations"  # the rows the intervals came from, beside them
    assert sorted(p.name for p in (kept / slug("highway + blur 1")).iterdir()) == [
        "cnn",
        "modular-vision",
    ]
    for variant in variants:
        agent = variant["summary"]["agent"]
        folder = kept / slug(variant["variant"]) / ("cnn" if agent.startswith("cnn:") else agent)
        assert len(read_rows(folder)) == 2
        assert json.loads((folder / "summary.json").read_text()) == variant["summary"]
    (point,) = (store / "points").iterdir()  # the CNN: trained once, through the store's rule
    network = load_policy(out / "highway" / "cnn.ckpt")  # and its network kept, weights only
    trained = load_policy(point / "checkpoints" / "last.ckpt")
    assert all(torch.equal(network.state_dict[k], v) for k, v in trained.state_dict.items())
    train = yaml.safe_load((point / "train.yaml").read_text())
    assert train["data"]["max_frames"] == 20 and train["trainer"]["max_steps"] == 3
    assert train["model"]["network"]["width"] == 0.25
    again = driving_cli(["suite", "--config", str(path)])  # resumes: nothing left to do
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("): reused") == 1
    assert again.stdout.count("(same agent, code, seeds)") == 3 + 2


def _earlier_section(scenario: str):
    from driving.stats import Stat
    from driving.train.suite import HeadToHead, ScenarioSection

    row = HeadToHead(
        scenario, "clean", "0.5", "0.6", Stat(-0.1, (-0.2, -0.05), 2), "modular-vision"
    )
    return ScenarioSection(scenario, [row], ["table"], "2026-01-01T00:00:00+00:00", "earlier", {})


def test_suite_sections_round_trip_and_a_damaged_one_is_named(tmp_path):
    from driving.train.suite import gathered_sections
    from envs.errors import UserError

    _earlier_section("racetrack").write(tmp_path)
    _earlier_section("highway").write(tmp_path)
    assert gathered_sections(tmp_path) == [
        _earlier_section("highway"),
        _earlier_section("racetrack"),
    ]
    (tmp_path / "highway" / "suite.json").write_text("{not json")
    with pytest.raises(UserError, match=r"highway/suite\.json: not a suite section"):
        gathered_sections(tmp_path)


def test_suite_bad_recipe_is_a_one_line_error(tmp_path, capsys):
    from driving.commands import main

    path = tmp_path / "bad.yaml"
    for text, needle in [
        ("scenarios: []\n", "scenarios"),
        ("scenarios: [moon]\n", "moon"),
        ("scenarios: [highway]\nagents: [idm]\n", "modular-vision"),
        ("scenarios: [highway]\nnuisances: {kinds: [fog], severities: [1]}\n", "nuisances"),
        ("scenarios: [highway]\ncnns: [{labels: 0}]\n", "labels"),
        ("scenarios: [highway]\noverrides: {nuisance: {kind: blur, severity: 1}}\n", "nuisance"),
        ("scenarios: [highway]\ncheckpoints: {merge: {cnn: x.ckpt}}\n", "checkpoints"),
    ]:
        path.write_text(text)
        assert main(["suite", "--config", str(path)]) == 2, text
        (line,) = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert line.startswith("driving suite: error: ") and needle in line, line
