"""DAgger in Lightning: rounds add expert-labelled on-policy frames with their provenance."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from driving.dataset import DemoDataset
from driving.mixers import BetaMixture, DartNoise
from tests.support import TINY, tiny_fit_config

ROUND_SEEDS_FROM = 50_000


def _dataset(driving_cli, root: Path) -> None:
    result = driving_cli(
        [
            "collect",
            "--agent",
            "modular-oracle",
            "--episodes",
            "2",
            "--quiet",
            "--overrides",
            json.dumps(TINY),
            "--out",
            str(root),
        ]
    )
    assert result.returncode == 0, result.stderr


def _config(
    tmp_path: Path, data: Path, *, rounds: int, epochs: int, per_round: int, noise: float = 0.0
) -> Path:
    """The shipped ``experiments/dagger_highway.yaml`` with its budget cut."""
    config = tiny_fit_config("dagger_highway", data, tmp_path / "run", max_epochs=epochs)
    config["model"]["schedule"] = "constant"
    (dagger,) = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("DAgger")]
    assert dagger["init_args"]["first_seed"] == ROUND_SEEDS_FROM
    dagger["init_args"].update(
        rounds=rounds, every_n_epochs=1, episodes_per_round=per_round, noise_steer=noise
    )
    path = tmp_path / "dagger.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _records(data: Path) -> list[dict]:
    return json.loads((data / "manifest.json").read_text())["episodes"]


def test_beta_mixture_executes_expert_with_probability_beta():
    agent, expert = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    assert np.array_equal(BetaMixture(0.0, 1)(3, 0, agent, expert), agent)
    assert np.array_equal(BetaMixture(1.0, 1)(3, 0, agent, expert), expert)
    picks = [BetaMixture(0.3, 2)(7, t, agent, expert)[0] > 0 for t in range(2000)]
    assert 0.25 < np.mean(picks) < 0.35
    again = [BetaMixture(0.3, 2)(7, t, agent, expert)[0] > 0 for t in range(2000)]
    assert picks == again  # drawn from (round, seed, step) only


def test_beta_mixture_noise_perturbs_the_executed_steering_only():
    agent, expert = np.array([-0.5, -0.5]), np.array([0.5, 0.5])
    noisy = BetaMixture(1.0, 1, DartNoise(("accel", "steer"), (0.0, 0.05)))
    executed = np.array([noisy(3, t, agent, expert) for t in range(2000)])
    assert np.all(executed[:, 0] == 0.5)  # accel: the expert's, no noise
    assert 0.045 < np.std(executed[:, 1] - 0.5) < 0.055
    assert abs(np.mean(executed[:, 1] - 0.5)) < 0.005
    assert np.array_equal(executed[7], noisy(3, 7, agent, expert))  # drawn from (seed, step)


def test_two_rounds_add_frames_with_provenance(driving_cli, tmp_path):
    data = tmp_path / "data"
    _dataset(driving_cli, data)
    config = _config(tmp_path, data, rounds=2, epochs=2, per_round=2, noise=0.05)
    result = driving_cli(["fit", "--config", str(config)])
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(data)
    assert [r["seed"] for r in records[:2]] == [0, 1] and "dagger_round" not in records[0]
    added = records[2:]
    assert [(r["seed"], r["dagger_round"], r["beta"]) for r in added] == [
        (50_000, 1, 0.5),
        (50_001, 1, 0.5),
        (50_002, 2, 0.25),
        (50_003, 2, 0.25),
    ]
    for r in added:
        assert Path(r["policy"]).is_file(), r["policy"]
        assert r["noise"]["std"] == {"accel": 0.0, "steer": 0.05}
    assert "noise" not in records[0]
    demo = DemoDataset(data)
    rounds = demo.indices(range(50_000, 50_004))
    # the noise is on the executed steering; the label stays the expert's clean action
    steer_gap = demo.actions[rounds, 1] - demo.expert_actions[rounds, 1]
    mixed = demo.actions[rounds, 1] - demo.agent_actions[rounds, 1]
    assert np.all((np.abs(steer_gap) > 0) & (np.abs(mixed) > 0))
    assert 0.005 < np.median(np.minimum(np.abs(steer_gap), np.abs(mixed))) < 0.1
    assert driving_cli(["data", "verify", str(data)]).returncode == 0


def test_resumed_run_continues_its_round_count_and_dataset(driving_cli, tmp_path):
    data = tmp_path / "data"
    _dataset(driving_cli, data)
    first = _config(tmp_path, data, rounds=2, epochs=1, per_round=2)
    assert driving_cli(["fit", "--config", str(first)]).returncode == 0
    assert [r.get("dagger_round") for r in _records(data)] == [None, None, 1, 1]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    result = driving_cli(
        ["fit", "--config", str(first), "--trainer.max_epochs", "2", "--ckpt_path", str(last)]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r.get("dagger_round") for r in _records(data)] == [None, None, 1, 1, 2, 2]
    assert [r["seed"] for r in _records(data)][2:] == [50_000, 50_001, 50_002, 50_003]


def test_cosine_schedule_reaches_zero_on_the_last_step_as_the_data_grows(driving_cli, tmp_path):
    # a round doubles the training set mid-run; the rate must still fall to zero, not rise
    data = tmp_path / "data"
    _dataset(driving_cli, data)
    config = yaml.safe_load(_config(tmp_path, data, rounds=1, epochs=2, per_round=2).read_text())
    del config["trainer"]["limit_train_batches"]
    config["trainer"]["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(tmp_path / "logs"), "name": "run"},
    }
    config["trainer"]["log_every_n_steps"] = 1
    config["model"].update(schedule="cosine", lr=0.01)
    path = tmp_path / "cosine.yaml"
    path.write_text(yaml.safe_dump(config))
    result = driving_cli(["fit", "--config", str(path)])
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = (tmp_path / "logs").rglob("metrics.csv")
    rows = [line.split(",") for line in metrics.read_text().splitlines()]
    lr_col, epoch_col = rows[0].index("train/lr"), rows[0].index("epoch")
    logged = [(int(r[epoch_col]), float(r[lr_col])) for r in rows[1:] if r[lr_col]]
    per_epoch = [sum(1 for e, _ in logged if e == epoch) for epoch in (0, 1)]
    assert per_epoch[1] > per_epoch[0]  # the round added training frames
    # the rate of batch k of epoch e is set after the previous step: progress (e + k / n_e) / 2
    expected = [
        0.01 * 0.5 * (1 + math.cos(math.pi * (epoch + k / n) / 2))
        for epoch, n in enumerate(per_epoch)
        for k in range(n)
    ]
    assert [lr for _, lr in logged] == pytest.approx(expected, rel=1e-5)
    # and after the last step it is zero (a per-step cosine sized on the first epoch's data
    # passed its end in epoch 2 and rose again)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
def test_ddp_processes_collect_disjoint_seeds(driving_cli, tmp_path):
    data = tmp_path / "data"
    _dataset(driving_cli, data)
    config = _config(tmp_path, data, rounds=1, epochs=1, per_round=4)
    result = driving_cli(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.strategy",
            "ddp",
            "--trainer.devices",
            "2",
            "--trainer.accelerator",
            "cpu",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    by_rank: dict[int, set[int]] = {}
    for r in _records(data)[2:]:
        by_rank.setdefault(r["rank"], set()).add(r["seed"])
    assert sorted(by_rank) == [0, 1]
    assert not by_rank[0] & by_rank[1]
    assert by_rank[0] | by_rank[1] == set(range(50_000, 50_004))


def test_shipped_dagger_config_parses_and_names_the_callback(driving_cli):
    result = driving_cli(["fit", "--config", "experiments/dagger_highway.yaml", "--print_config"])
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    names = [c["class_path"] for c in printed["trainer"]["callbacks"]]
    assert "driving.train.dagger.DAgger" in names
    assert printed["trainer"]["reload_dataloaders_every_n_epochs"] == 1
