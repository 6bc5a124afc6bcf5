"""Behaviour cloning: networks, checkpoints, the DataModule, and ``driving fit`` end to end.

The end-to-end tests run the real CLI in subprocesses on a tiny dataset (4 short IDM episodes),
from a config derived from the shipped ``experiments/bc_cpu_small.yaml`` with a tiny budget, in
a temporary working directory (the config's relative ``runs/...`` paths land there).
"""

from __future__ import annotations

import glob
import json
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from agents.baselines import IdmAgent
from agents.checkpoint import load_policy, policy_record
from agents.cnn_agent import make_cnn_agent
from agents.networks import NetworkConfig, build_network, visual_backprop
from driving.dataset import DatasetWriter
from driving.rollout import rollout
from driving.train.checkpoint_io import save_policy
from driving.train.datamodule import DemoDataModule, augment, gaussian_blur, split_episodes
from driving.video import read_video
from envs.errors import UserError
from envs.scenarios import get_scenario
from tests.support import REPO, TINY, assert_one_line_error, run_driving

SEEDS = [0, 1, 2, 3]
BEST = Path("runs/bc_cpu_small/checkpoints/best.ckpt")
LAST = Path("runs/bc_cpu_small/checkpoints/last.ckpt")


def _write_dataset(root: Path, seeds: list[int], add: list[int] | None = None) -> None:
    scenario = get_scenario("highway").with_overrides(TINY)
    agent = IdmAgent(scenario)
    writer = DatasetWriter.create(root, scenario, {"agent": "idm"}, seeds)
    episodes = rollout(agent, scenario, add or seeds, expert=agent, record_frames=True)
    writer.add(episodes)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """4 tiny IDM episodes (60 frames) with expert labels."""
    root = tmp_path_factory.mktemp("bc") / "data"
    _write_dataset(root, SEEDS)
    return root


def _tiny_config(path: Path, data: Path) -> Path:
    """The shipped CPU config with a tiny budget (1 epoch of 2 batches, short closed loop)."""
    config = yaml.safe_load((REPO / "experiments/bc_cpu_small.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, enable_progress_bar=False)
    for callback in config["trainer"]["callbacks"]:
        if callback["class_path"].endswith("ClosedLoopValidation"):
            callback["init_args"].update(
                every_n_epochs=1, episodes=2, overrides={"vehicles_count": 8, "duration": 2}
            )
    config["model"]["network"]["width"] = 0.25
    config["data"].update(root=str(data), batch_size=8)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset) -> Path:
    """A working directory in which ``driving fit`` ran once on the tiny config."""
    cwd = tmp_path_factory.mktemp("fit")
    config = _tiny_config(cwd / "tiny.yaml", dataset)
    result = run_driving(["fit", "--config", str(config)], cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return cwd


# --- networks, checkpoints, agent (in process) ---------------------------------------------


@pytest.mark.parametrize("kind", ["pilotnet", "resnet"])
@pytest.mark.parametrize("shape", [(4, 64, 160), (12, 16, 16)])
def test_networks_bounded_actions_and_saliency(kind, shape):
    net = build_network(NetworkConfig(kind=kind, width=0.25), shape, 2).eval()
    obs = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    out = net(obs)
    assert out.shape == (3, 2) and bool((out.abs() <= 1).all())
    sal = visual_backprop(net, obs)
    assert sal.shape == (3, *shape[1:])
    assert float(sal.min()) >= 0.0 and float(sal.max()) == pytest.approx(1.0)


def test_speed_input_network_reads_the_speedometer(tmp_path):
    scenario = get_scenario("highway")
    config = NetworkConfig(width=0.25, speed_input=True)
    net = build_network(config, scenario.observation.shape, scenario.action.size).eval()
    with torch.no_grad():  # make the speed's weight large enough to matter
        net.head[1].weight[:, -1] = 5.0
    obs = torch.randint(0, 256, (2, *scenario.observation.shape), dtype=torch.uint8)
    slow = net(obs, torch.tensor([10.0, 10.0]))
    fast = net(obs, torch.tensor([10.0, 30.0]))
    assert torch.equal(slow[0], fast[0]) and not torch.equal(slow[1], fast[1])
    with pytest.raises(ValueError, match="speed"):
        net(obs)

    path = tmp_path / "speed.ckpt"
    save_policy(path, net, policy_record(scenario, config, training_frames=1, expert_labels=1))
    agent = make_cnn_agent(scenario, str(path))
    infos = [{"metrics": {"speed": 10.0}}, {"metrics": {"speed": 30.0}}]
    actions = agent.act_batch(obs.numpy(), infos, [0, 1])
    np.testing.assert_allclose(actions, fast.detach(), atol=1e-5)
    with pytest.raises(ValueError, match="speed"):
        agent.act_batch(obs.numpy(), [{}, {}], [0, 1])


def test_checkpoint_round_trip_and_user_errors(tmp_path):
    scenario = get_scenario("highway")
    config = NetworkConfig(width=0.25)
    net = build_network(config, scenario.observation.shape, scenario.action.size)
    record = policy_record(scenario, config, training_frames=12, expert_labels=15)
    path = tmp_path / "p.ckpt"
    save_policy(path, net, record)
    agent = make_cnn_agent(scenario, str(path))
    obs = np.random.default_rng(0).integers(0, 256, (2, *scenario.observation.shape), np.uint8)
    actions = agent.act_batch(obs, [{}, {}], [0, 1])
    assert actions.shape == (2, 2) and actions.dtype == np.float32
    expected = net.eval()(torch.from_numpy(obs)).detach().numpy()
    np.testing.assert_allclose(actions, expected, atol=1e-5)
    sal = agent.explain(1)["saliency"]
    assert sal.shape == (64, 160) and sal.min() >= 0.0 and sal.max() <= 1.0
    assert agent.describe()["training_frames"] == 12
    assert agent.describe()["expert_labels"] == 15
    assert agent.parameters == sum(p.numel() for p in net.parameters())

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[:500])
    payload = tmp_path / "payload.ckpt"
    torch.save({"policy": record, "evil": Path("/")}, payload)  # a pickled Python object
    cases = {
        tmp_path / "missing.ckpt": "not found",
        truncated: "truncated",
        payload: "refusing to unpickle",
    }
    for bad, needle in cases.items():
        with pytest.raises(UserError, match=needle) as err:
            load_policy(bad)
        assert bad.name in str(err.value) and "\n" not in str(err.value)
    rgb = scenario.with_overrides({"observation": {"kind": "rgb"}})
    with pytest.raises(UserError, match=r"p\.ckpt was trained on observations"):
        make_cnn_agent(rgb, str(path))


# --- data ---------------------------------------------------------------------------------


def test_split_is_by_episode_deterministic_and_stable():
    seeds = np.arange(200)
    train, val = split_episodes(seeds, 0.2)
    assert set(train).isdisjoint(val) and len(train) + len(val) == 200
    assert 20 <= len(val) <= 60
    _, more_val = split_episodes(np.arange(400), 0.2)
    assert set(val) == set(more_val) & set(seeds)  # adding episodes never moves old ones
    assert len(split_episodes(np.arange(2), 0.1)[1]) == 1


def test_augmentation_keeps_labels_true():
    frames = torch.arange(2 * 4 * 6 * 5, dtype=torch.float32).reshape(2, 4, 6, 5) % 256
    labels = torch.tensor([[0.5, 0.3], [-0.2, -0.7]])
    x, y = augment(frames, labels, brightness=0.0, noise_std=0.0, mirror_prob=1.0, steer_index=1)
    assert torch.equal(x, frames.flip(-2))
    assert torch.equal(y, torch.tensor([[0.5, -0.3], [-0.2, 0.7]]))
    x, y = augment(frames, labels, brightness=0.3, noise_std=2.0, mirror_prob=0.0, steer_index=1)
    assert torch.equal(y, labels) and float(x.min()) >= 0 and float(x.max()) <= 255


@pytest.mark.parametrize("sigma", [0.8, 1.5, 3.0])
def test_blur_augmentation_is_the_blur_nuisance(sigma):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 4, 40, 30)).astype(np.float32)
    sigmas = torch.tensor([sigma, 0.0])
    x = gaussian_blur(torch.from_numpy(image), sigmas).numpy()
    expected = np.stack([cv2.GaussianBlur(ch, (0, 0), sigma) for ch in image[0]])
    assert np.abs(x[0] - expected).max() < 1.0  # grey levels: truncation at 3 std vs OpenCV's 4
    assert np.allclose(x[1], image[1], atol=1e-3)  # std 0: the image as it was


def test_photometric_augmentation_spans_the_brightness_nuisance():
    frames = torch.full((4000, 1, 2, 2), 200.0)
    labels = torch.zeros(4000, 2)
    x, y = augment(
        frames,
        labels,
        brightness=0.0,
        noise_std=0.0,
        mirror_prob=0.0,
        steer_index=1,
        contrast=0.6,
        offset=60.0,
    )
    assert torch.equal(y, labels)
    level = x[:, 0, 0, 0]  # 128 + g * 72 + o with g in [0.4, 1] and o in [-60, 60]
    assert float(level.min()) >= 128 + 0.4 * 72 - 60 - 1e-3 and float(level.max()) <= 255
    assert float(level.min()) < 128 + 0.5 * 72 - 50 and float(level.max()) > 128 + 0.9 * 72 + 50
    assert torch.equal(x[:, :, 0, 0], x[:, :, 1, 1])  # one change per image


def test_datamodule_splits_by_episode_and_reloads_appended_frames(tmp_path):
    root = tmp_path / "data"
    _write_dataset(root, [*SEEDS, 4], add=SEEDS)
    dm = DemoDataModule(str(root), val_fraction=0.3, batch_size=4)
    train_eps = set(dm.data.episode[dm.train_rows])
    val_eps = set(dm.data.episode[dm.val_rows])
    assert train_eps and val_eps and train_eps.isdisjoint(val_eps)
    frames, speed, labels = next(iter(dm.train_dataloader()))
    assert frames.shape == (4, 4, 64, 160) and frames.dtype == torch.uint8
    assert labels.shape == (4, 2)
    assert speed.shape == (4,) and torch.all((speed > 5) & (speed < 40))  # m/s, not km/h
    before = len(dm.data)
    scenario = dm.scenario
    agent = IdmAgent(scenario)
    DatasetWriter.open(root).add(rollout(agent, scenario, [4], expert=agent, record_frames=True))
    dm.train_dataloader()  # re-reads the folder (DAgger appends between epochs)
    assert len(dm.data) == before + 15
    assert dm.policy_spec["expert_labels"] == before + 15


def test_brake_weight_draws_braking_frames_more_often(dataset):
    uniform = DemoDataModule(str(dataset), val_fraction=0.0)
    assert uniform.train_sampler() is None
    accel = uniform.data.expert_actions[uniform.train_rows, 0]
    threshold = float(np.quantile(accel, 0.3))
    dm = DemoDataModule(str(dataset), val_fraction=0.0, brake_threshold=threshold, brake_weight=9.0)
    braking = dm.braking(dm.train_rows)
    share = float(braking.mean())
    assert 0.05 < share < 0.5
    torch.manual_seed(0)
    drawn = np.concatenate([list(dm.train_sampler()) for _ in range(100)])
    assert len(drawn) == 100 * len(dm.train_rows)
    expected = 9 * share / (9 * share + 1 - share)
    assert float(braking[drawn].mean()) == pytest.approx(expected, abs=0.03)
    with pytest.raises(UserError, match="brake_weight"):
        DemoDataModule(str(dataset), brake_weight=0.0)


def test_bench_train_times_both_loops_on_real_batches(dataset, capsys):
    from driving.commands.bench.train import main as bench_main

    args = ["--data", str(dataset), "--batch-size", "4", "--steps", "2", "--warmup", "1"]
    assert bench_main([*args, "--repeats", "1", "--width", "0.25"]) == 0
    out = capsys.readouterr().out
    rates = [float(r) for r in re.findall(r"([\d.]+) samples/s  \(best", out)]
    assert len(rates) == 2 and all(r > 0 for r in rates)  # bare loop, Lightning
    assert "speed input True" in out and "ratio Lightning / bare = " in out
    assert "one epoch (" in out


# --- driving fit / evaluate / predict (subprocesses) --------------------------------------


def test_fit_writes_a_checkpoint_that_a_second_process_drives_with(trained, tmp_path):
    best = trained / BEST
    assert best.is_file() and (trained / LAST).is_file()
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    assert ckpt["policy"]["training_frames"] > 0
    assert ckpt["hyper_parameters"]["network"]["width"] == 0.25
    out = tmp_path / "eval"
    result = run_driving(
        [
            "evaluate",
            "--agent",
            f"cnn:{best}",
            "--scenario",
            "highway",
            "--episodes",
            "2",
            "--overrides",
            json.dumps(TINY),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 2
    description = summary["agent_description"]
    assert description["checkpoint"] == str(best)
    assert description["training_frames"] == ckpt["policy"]["training_frames"]
    assert description["expert_labels"] == 60
    assert summary["parameters"] > 0


def _wandb_records(path: Path):
    """Decode a W&B ``.wandb`` transaction log (LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, buf = path.read_bytes(), 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 2):
            buf = chunk
        elif kind in (3, 4):
            buf += chunk
        else:
            pos += block - pos % block
            continue
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            yield record


def test_offline_wandb_run_holds_losses_closed_loop_metrics_video_and_model(trained):
    runs = glob.glob(str(trained / "runs/bc_cpu_small/wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1, runs
    keys, config, artifacts = set(), set(), []
    for record in _wandb_records(Path(runs[0])):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "config":
            config |= {item.key for item in record.config.update}
        elif kind == "artifact":
            artifacts.append(record.artifact.type)
    for key in (
        "train/loss_epoch",
        "val/loss",
        "val/mae_steer",
        "train/mae_accel",
        "closed_loop/collided",
        "closed_loop/distance_m",
        "closed_loop/completed",
    ):
        assert key in keys, (key, sorted(keys))
    assert any(k.startswith("closed_loop/video") for k in keys)
    assert {"lr", "network", "batch_size", "root"} <= config
    assert "model" in artifacts
    videos = list((trained / "runs/bc_cpu_small/videos").glob("*.mp4"))
    assert videos and 1 <= read_video(videos[0]).shape[0] <= 10  # at most 2 s at 5 Hz


def test_fit_resumes_from_last_checkpoint(trained, tmp_path):
    last = trained / LAST
    before = torch.load(last, weights_only=True)["global_step"]
    result = run_driving(
        [
            "fit",
            "--config",
            str(trained / "tiny.yaml"),
            "--trainer.max_epochs",
            "2",
            "--trainer.logger",
            "false",
            "--ckpt_path",
            str(last),
        ],
        cwd=trained,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    after = torch.load(last, weights_only=True)
    assert after["global_step"] == before + 2 and after["epoch"] >= 1


def test_init_from_starts_a_fit_from_another_run_s_weights(trained, tmp_path):
    config = str(trained / "tiny.yaml")
    start = load_policy(trained / LAST).state_dict
    # at learning rate 0 the fit keeps the weights it started from, so they must be LAST's (a
    # fit from scratch would keep the seeded initial weights, which LAST's 2 steps changed)
    args = ["fit", "--config", config, "--trainer.logger", "false", "--model.lr", "0"]
    result = run_driving([*args, "--model.init_from", str(trained / LAST)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    tuned = load_policy(tmp_path / LAST)
    assert all(torch.equal(tuned.state_dict[k], start[k]) for k in start)
    wider = ["--model.network.width", "0.5", "--model.init_from", str(trained / LAST)]
    assert_one_line_error(run_driving([*args, *wider], cwd=tmp_path), "network")
    missing = ["--model.init_from", str(tmp_path / "none.ckpt")]
    assert_one_line_error(run_driving([*args, *missing], cwd=tmp_path), "none.ckpt")


def test_predict_writes_actions_for_the_dataset(trained, dataset, tmp_path):
    out = tmp_path / "pred.npz"
    result = run_driving(
        [
            "predict",
            "--config",
            str(trained / "tiny.yaml"),
            "--trainer.logger",
            "false",
            "--ckpt_path",
            str(trained / BEST),
            "--predictions.path",
            str(out),
        ],
        cwd=trained,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(out, allow_pickle=False) as pred:
        assert pred["predicted"].shape == (60, 2) == pred["expert"].shape
        assert np.all(np.abs(pred["predicted"]) <= 1)
        assert list(pred["names"]) == ["accel", "steer"]


def test_print_config_reproduces_the_run(dataset, tmp_path):
    config = _tiny_config(tmp_path / "tiny.yaml", dataset)
    printed = run_driving(
        ["fit", "--config", str(config), "--model.lr", "0.003", "--print_config"], cwd=tmp_path
    )
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "printed.yaml").write_text(printed.stdout)
    assert yaml.safe_load(printed.stdout)["model"]["lr"] == 0.003
    run_dir = tmp_path / "again"
    run_dir.mkdir()
    result = run_driving(
        ["fit", "--config", str(tmp_path / "printed.yaml"), "--trainer.logger", "false"],
        cwd=run_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    hparams = torch.load(run_dir / BEST, weights_only=True)["hyper_parameters"]
    assert hparams["lr"] == 0.003 and hparams["network"]["width"] == 0.25


def test_nan_loss_stops_training_with_a_clear_message(dataset, tmp_path):
    config = _tiny_config(tmp_path / "tiny.yaml", dataset)
    result = run_driving(
        [
            "fit",
            "--config",
            str(config),
            "--model.lr",
            "1e30",
            "--model.schedule",
            "constant",
            "--trainer.logger",
            "false",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "loss is nan" in errors[0], result.stderr[-2000:]
    assert "stopped before updating the weights" in errors[0]
    assert not (tmp_path / BEST).exists()  # nothing written from the diverged weights


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model.bogus", "3"], "model.bogus"),
        (["--model.lr", "fast"], "model.lr"),
        (["--data.root", "/no/such/dataset"], "/no/such/dataset"),
        (["--data.contrast", "1.5"], "0 <= contrast < 1"),
    ],
)
def test_bad_config_is_a_one_line_error(dataset, tmp_path, extra, needle):
    config = _tiny_config(tmp_path / "tiny.yaml", dataset)
    assert_one_line_error(
        run_driving(["fit", "--config", str(config), *extra], cwd=tmp_path), needle
    )


def test_bad_yaml_key_is_a_one_line_error(dataset, tmp_path):
    config = _tiny_config(tmp_path / "tiny.yaml", dataset)
    text = yaml.safe_load(config.read_text())
    text["data"]["batchsize"] = 3
    config.write_text(yaml.safe_dump(text))
    assert_one_line_error(run_driving(["fit", "--config", str(config)], cwd=tmp_path), "batchsize")


def test_collapse_guard_warns_when_every_frame_gets_the_same_action():
    import warnings

    from driving.train.callbacks import CollapseGuard

    scenario = get_scenario("highway")
    config = NetworkConfig(width=0.25, speed_input=True)
    net = build_network(config, scenario.observation.shape, scenario.action.size)
    frames = torch.randint(0, 256, (8, *scenario.observation.shape), dtype=torch.uint8)
    batch = (frames, torch.full((8,), 20.0), torch.zeros(8, scenario.action.size))
    guard = CollapseGuard()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a network that reads its input: no warning
        guard.on_train_batch_end(None, net, None, batch, 0)
        guard.on_train_end(None, net)
    with torch.no_grad():  # every unit of the last hidden layer dead: one output for all frames
        net.head[-4].weight.zero_()
        net.head[-4].bias.fill_(-1.0)
    assert torch.equal(net(frames[:1], batch[1][:1]).expand(8, -1), net(frames, batch[1]))
    guard.on_train_batch_end(None, net, None, batch, 0)
    with pytest.warns(UserWarning, match="training collapsed: .* all 8 frames"):
        guard.on_train_end(None, net)
    assert net.training  # left as it was found
