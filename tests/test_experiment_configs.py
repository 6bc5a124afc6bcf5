"""Every shipped experiment config (``experiments/*.yaml``) runs as shipped, with only its
budget cut, in a subprocess (the ``driving`` command a user would type).

``bc_cpu_small`` is trained by ``tests/test_train.py``, ``dagger_highway`` by
``tests/test_dagger.py``, ``curve_highway`` by the slow test of ``tests/test_curve.py`` and
``compare_suite`` by the slow test of ``tests/test_suite.py``, each
from the shipped file; this file runs the others and checks that none is left out.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from agents.checkpoint import policy_record
from agents.networks import NetworkConfig, build_network
from driving.train.checkpoint_io import save_policy
from envs.scenarios import get_scenario
from tests.support import REPO, TINY, run_driving, shipped_config, tiny_fit_config

SMOKE_RUNS = {
    "bc_cpu_small": "tests/test_train.py::trained",
    "bc_gpu": "tests/test_experiment_configs.py::test_bc_gpu_trains_on_a_tiny_budget",
    "compare_highway": "tests/test_experiment_configs.py::test_compare_highway_runs_every_agent",
    "compare_suite": "tests/test_suite.py::"
    "test_suite_trains_a_cnn_per_scenario_and_reports_winners_per_nuisance",
    "curve_highway": "tests/test_curve.py::test_curve_runs_bc_and_dagger_and_reports_both_series",
    "curve_highway_no_photometric": "tests/test_curve.py::"
    "test_the_no_photometric_curve_is_the_highway_curve_without_its_augmentation",
    "curve_racetrack": "tests/test_curve.py::test_curve_racetrack_runs_on_the_steer_only_circuit",
    "dagger_highway": "tests/test_dagger.py::test_two_rounds_add_frames_with_provenance",
}
"""Shipped config -> the test that runs it."""


def test_every_shipped_config_has_a_smoke_run():
    shipped = {p.stem for p in (REPO / "experiments").glob("*.yaml")}
    assert shipped == set(SMOKE_RUNS)
    for where in SMOKE_RUNS.values():
        file, _, name = where.partition("::")
        assert f"def {name}(" in (REPO / file).read_text(), where


def _tiny_dataset(root: Path) -> Path:
    args = ["collect", "--agent", "idm", "--episodes", "2", "--quiet", "--out", str(root)]
    result = run_driving([*args, "--overrides", json.dumps(TINY)])
    assert result.returncode == 0, result.stderr
    return root


def test_bc_gpu_trains_on_a_tiny_budget(tmp_path):
    # bf16-mixed and channels_last run on a CPU too (slowly): the shipped config, not a GPU
    config = tiny_fit_config("bc_gpu", _tiny_dataset(tmp_path / "data"), tmp_path / "run")
    path = tmp_path / "bc_gpu.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_driving(["fit", "--config", str(path)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_compare_highway_runs_every_agent(tmp_path):
    config = shipped_config("compare_highway")
    config.update(overrides=TINY, episodes=1, workers=1, wandb=False, out=str(tmp_path / "cmp"))
    for shift in config["shifts"]:
        shift["overrides"] = {**shift.get("overrides", {}), **TINY}
    # the CNN the config names, relative to the working directory: an untrained one will do
    (spec,) = [a for a in config["agents"] if a.startswith("cnn:")]
    scenario = get_scenario("highway")
    network = NetworkConfig(width=0.25, speed_input=True)
    record = policy_record(scenario, network, training_frames=1, expert_labels=1)
    net = build_network(network, scenario.observation.shape, scenario.action.size)
    save_policy(tmp_path / spec.removeprefix("cnn:"), net, record)
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_driving(["compare", "--config", str(path)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "cmp" / "report.md").read_text()
    for agent in config["agents"]:
        assert report.count(f"| {agent} |") >= 1 + len(config["shifts"]), agent
