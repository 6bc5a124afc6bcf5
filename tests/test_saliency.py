"""``driving saliency``: the pixel classes of real frames, the share arithmetic, and a real run of
the command on tiny episodes (its files and its one-line errors)."""

from __future__ import annotations

import json

import numpy as np

import envs
from agents.checkpoint import policy_record
from agents.networks import NetworkConfig, build_network
from driving.saliency import CLASSES, class_shares, outcome, pixel_classes
from driving.train.checkpoint_io import save_policy
from envs.scenarios import get_scenario
from tests.support import TINY, assert_one_line_error


def _frame(name: str, steps: int = 3) -> np.ndarray:
    env = envs.make(name, {"vehicles_count": 20} if name == "highway" else {})
    obs, _ = env.reset(seed=1_000_000)
    for _ in range(steps):
        obs, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    env.close()
    return obs[-1]


def test_every_pixel_of_a_real_frame_is_in_exactly_one_class_and_the_ego_car_is_at_its_place():
    for name in ("highway", "racetrack"):
        spec = get_scenario(name).observation
        frame = _frame(name)
        masks = pixel_classes(frame, spec)
        assert masks.shape == (len(CLASSES), spec.height, spec.width)
        assert np.array_equal(masks.sum(axis=0), np.ones(frame.shape)), name
        others, ego, markings, _ = masks
        # the ego car: a 5 m x 2 m body at 3 px/m, with its outline, around the ego position
        assert 60 <= ego.sum() <= 200, (name, ego.sum())
        rows, cols = np.nonzero(ego)
        cx, cy = spec.centering[0] * spec.width, spec.centering[1] * spec.height
        assert abs(cols.mean() - cx) < 4 and abs(rows.mean() - cy) < 4, name
        assert markings.sum() > 100, name  # the lane lines
        assert not (markings & (others | ego)).any()
    assert pixel_classes(_frame("highway"), get_scenario("highway").observation)[0].sum() > 0


def test_class_shares_are_the_maps_mass_per_class_and_the_area_for_an_empty_map():
    masks = np.zeros((4, 4, 5), dtype=bool)
    masks[0, :2] = True  # 10 px
    masks[2, 2] = True  # 5 px
    masks[3] = ~(masks[0] | masks[2])  # 5 px
    saliency = np.zeros((4, 5))
    saliency[0, 0], saliency[2, 1] = 3.0, 1.0
    np.testing.assert_allclose(class_shares(saliency, masks), [0.75, 0.0, 0.25, 0.0])
    np.testing.assert_allclose(class_shares(np.zeros((4, 5)), masks), [0.5, 0.0, 0.25, 0.25])


def test_outcome_names_how_an_episode_ended():
    base = {"completed": 0.0, "collided": 0.0, "offroad_time_s": 0.0}
    assert outcome({**base, "completed": 1.0}) == "completed"
    assert outcome({**base, "collided": 1.0, "offroad_time_s": 0.4}) == "collided"
    assert outcome({**base, "offroad_time_s": 0.4}) == "left the road"
    assert outcome(base) == "other failure"


def _checkpoint(tmp_path):
    scenario = get_scenario("highway")
    network = NetworkConfig(width=0.25, speed_input=True)
    net = build_network(network, scenario.observation.shape, scenario.action.size)
    path = tmp_path / "untrained.ckpt"
    save_policy(path, net, policy_record(scenario, network, training_frames=1, expert_labels=1))
    return path


def test_saliency_drives_real_episodes_and_writes_its_report(driving_cli, tmp_path):
    out = tmp_path / "sal"
    overrides = json.dumps(TINY)
    args = [str(_checkpoint(tmp_path)), "--out", str(out), "--episodes", "3", "--quiet"]
    result = driving_cli(["saliency", *args, "--images", "1", "--overrides", overrides])
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "saliency.json").read_text())
    assert sorted(s for seeds in data["outcome_seeds"].values() for s in seeds) == data["seeds"]
    assert len(data["seeds"]) == 3
    report = (out / "report.md").read_text()
    for kind, seeds in data["outcome_seeds"].items():
        assert f"{kind} ({len(seeds)} ep.)" in report
        for name in CLASSES:
            shares = data["shares"][kind][name]
            assert len(shares) == len(seeds) and all(0.0 <= x <= 1.0 for x in shares)
        totals = np.sum([data["shares"][kind][name] for name in CLASSES], axis=0)
        np.testing.assert_allclose(totals, 1.0, atol=1e-6)
    failures = sum(len(v) for k, v in data["outcome_seeds"].items() if k != "completed")
    pictures = sorted(p.name for p in out.glob("failure_*.png"))
    assert len(pictures) == min(failures, 1)
    assert all(f"({name})" in report for name in pictures)
    for name in CLASSES:
        assert f"| {name} | " in report


def test_saliency_refuses_nuisances_and_bad_flags_in_one_line(driving_cli, tmp_path):
    checkpoint = str(_checkpoint(tmp_path))
    out = ["--out", str(tmp_path / "o")]
    blur = json.dumps({"nuisance": {"kind": "blur", "severity": 1}})
    assert_one_line_error(
        driving_cli(["saliency", checkpoint, *out, "--overrides", blur]), "without sensor nuisances"
    )
    assert_one_line_error(driving_cli(["saliency", checkpoint, *out, "--window", "0"]), "--window")
    assert_one_line_error(driving_cli(["saliency", str(tmp_path / "none.ckpt"), *out]), "none.ckpt")
    assert not (tmp_path / "o").exists()
