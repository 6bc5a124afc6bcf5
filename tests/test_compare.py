"""The comparison report from tiny runs: every agent, every column, plots, W&B run on disk."""

from __future__ import annotations

import json

import pytest
import yaml

from driving.report import COLUMNS
from envs.errors import UserError
from tests.support import assert_one_line_error

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


def test_compare_reuses_an_evaluation_only_while_its_key_holds(driving_cli, tmp_path):
    path = _config(tmp_path, agents=["idm", "keep-lane"], shifts=[], episodes=1, wandb=False)
    first = driving_cli(["compare", "--config", str(path)])
    assert first.returncode == 0, first.stderr
    assert "reused" not in first.stdout
    summaries = sorted((tmp_path / "cmp" / "evaluations").rglob("summary.json"))
    assert len(summaries) == 2 and all((s.parent / "key.json").exists() for s in summaries)
    before = [s.read_bytes() for s in summaries]
    again = driving_cli(["compare", "--config", str(path)])
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("reused") == 2
    assert [s.read_bytes() for s in summaries] == before  # not driven, not rewritten
    more = driving_cli(["compare", "--config", str(path), "--episodes", "2"])  # other seeds
    assert more.returncode == 0 and "reused" not in more.stdout, more.stderr
    assert all(json.loads(s.read_text())["episodes"] == 2 for s in summaries)
    fresh = driving_cli(["compare", "--config", str(path), "--episodes", "2", "--fresh"])
    assert fresh.returncode == 0 and "reused" not in fresh.stdout, fresh.stderr


def test_evaluation_key_changes_with_the_checkpoint_bytes(tmp_path):
    from agents.registry import AgentSpec, make_agent
    from driving.eval_cache import evaluation_key
    from envs.scenarios import get_scenario

    scenario = get_scenario("highway")
    agent = make_agent("idm", scenario)
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"weights 1")
    spec = AgentSpec.parse(f"cnn:{checkpoint}")
    key = evaluation_key(spec, agent, scenario, [1, 2])
    assert key == evaluation_key(spec, agent, scenario, [1, 2])
    checkpoint.write_bytes(b"weights 2")  # retrained in place: same path, other weights
    assert key != evaluation_key(spec, agent, scenario, [1, 2])
    assert key != evaluation_key(spec, agent, scenario, [1, 3])


def test_evaluation_key_covers_every_module_evaluation_imports():
    from driving.eval_cache import ROOT, code_files

    files = {str(p.relative_to(ROOT)) for p in code_files()}
    # what decides a figure: the loop, the metrics, the intervals, the seeds, the workers
    for name in ("evaluation", "rollout", "workers", "metrics", "stats", "mixers", "files"):
        assert f"driving/{name}.py" in files, name
    assert "agents/modular/vision.py" in files and "envs/fast/road.py" in files
    # what only presents figures, or trains, does not decide them
    assert not {"driving/report.py", "driving/comparison.py"} & files
    assert not any(f.startswith(("driving/train/", "driving/commands/")) for f in files)


def test_an_agent_entry_with_a_bad_point_is_a_clear_error(tmp_path):
    from agents.registry import AgentSpec
    from driving.comparison import AgentEntry, load_config

    path = tmp_path / "compare.yaml"
    for point in ("one", -1, True):
        entry = {"spec": "idm", "series": "BC", "point": point}
        path.write_text(yaml.safe_dump({"agents": [entry]}))
        with pytest.raises(UserError, match=r"agents\[0\].*point"):
            load_config(path)
    path.write_text(yaml.safe_dump({"agents": [{"spec": "idm", "series": "BC", "point": 2}]}))
    assert load_config(path).agents == [AgentEntry(AgentSpec("idm"), "BC", 2)]
