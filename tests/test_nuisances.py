"""Sensor nuisances (``envs.nuisances``): real tiny episodes, real observations.

Every kind corrupts the pixels (same shape and dtype, inside the observation space, not blank),
more so at a higher severity; the corruption is keyed by the episode seed and the frame, so it
is the same whatever drives; the ground truth in ``info`` is untouched; a bad override is a
one-line error; ``driving collect`` refuses a nuisance unless asked; ``watch`` shows it.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from agents.registry import make_agent
from driving import viewer
from driving.commands import collect as collect_command
from driving.rollout import iter_episodes
from envs.errors import UserError
from envs.nuisances import KINDS, SEVERITIES, Nuisance, frame_dropped
from envs.scenarios import get_scenario
from tests.support import TINY, assert_one_line_error

SEED = 1_000_003
STEPS = 6
PIXEL_KINDS = [k for k in KINDS if k != "dropped-frame"]


def _with(kind: str | None, severity: int = 2, **more) -> dict:
    overrides = {**TINY, **more}
    if kind is not None:
        overrides["nuisance"] = {"kind": kind, "severity": severity}
    return overrides


def _drive(overrides: dict, actions: list[np.ndarray], seed: int = SEED) -> tuple[list, list]:
    """Observations and infos of one env at reset and after each action."""
    env = envs.make("highway", overrides)
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        observations.append(obs)
        infos.append(info)
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            break
    env.close()
    return observations, infos


ZERO = [np.zeros(2, dtype=np.float32)] * STEPS


@pytest.fixture(scope="module")
def clean() -> tuple[list, list]:
    return _drive(_with(None), ZERO)


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference [gray levels]."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("kind", PIXEL_KINDS)
def test_each_pixel_kind_changes_every_captured_frame_and_more_with_severity(kind, clean):
    clean_obs, _ = clean
    change = []
    for severity in SEVERITIES:
        observations, _ = _drive(_with(kind, severity), ZERO)
        assert len(observations) == len(clean_obs)
        for obs, ref in zip(observations, clean_obs, strict=True):
            assert obs.shape == ref.shape and obs.dtype == np.uint8
            assert obs[-1].std() > 5, "the newest frame is blank"
            assert _mad(obs[-1], ref[-1]) > 0.1
        # the empty frames padding the stack at reset were never captured: left alone
        assert not observations[0][:-1].any()
        change.append(np.mean([_mad(o, r) for o, r in zip(observations, clean_obs, strict=True)]))
    assert change[0] < change[1] < change[2], change


def test_dropped_frames_repeat_the_previous_one_at_a_rate_rising_with_severity(clean):
    clean_obs, _ = clean
    for severity in SEVERITIES:
        nuisance = Nuisance("dropped-frame", severity)
        observations, _ = _drive(_with("dropped-frame", severity), ZERO)
        assert np.array_equal(observations[0], clean_obs[0])  # the first frame is never lost
        for t in range(1, len(observations)):
            expected = observations[t - 1][-1] if frame_dropped(nuisance, SEED, t) else None
            if expected is None:
                expected = clean_obs[t][-1]
            assert np.array_equal(observations[t][-1], expected), (severity, t)
            assert np.array_equal(observations[t][:-1], observations[t - 1][1:])  # FIFO stack
    lost = [
        {i for i in range(1, 400) if frame_dropped(Nuisance("dropped-frame", s), SEED, i)}
        for s in SEVERITIES
    ]
    assert lost[0] <= lost[1] <= lost[2]
    assert 0.05 < len(lost[0]) / 399 < 0.15 and 0.4 < len(lost[2]) / 399 < 0.6
    drops = [t for t in range(1, 40) if frame_dropped(Nuisance("dropped-frame", 3), SEED, t)]
    observations, _ = _drive(_with("dropped-frame", 3), ZERO)
    assert any(t < len(observations) for t in drops), "no drop within the tiny episode"


def test_a_captured_frame_keeps_its_corruption_as_it_moves_through_the_stack():
    observations, _ = _drive(_with("noise", 3), ZERO)
    for t in range(1, len(observations)):
        assert np.array_equal(observations[t][:-1], observations[t - 1][1:])


def test_same_seed_same_corrupted_frames_other_seed_other_ones():
    overrides = {
        **TINY,
        "nuisance": [{"kind": "noise", "severity": 2}, {"kind": "blotches", "severity": 2}],
    }
    first, _ = _drive(overrides, ZERO)
    again, _ = _drive(overrides, ZERO)
    other, _ = _drive(overrides, ZERO, seed=SEED + 1)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[-1][-1], other[-1][-1])


def test_every_agent_sees_the_same_corruption():
    """Noise drawn by (seed, frame): the residual over the clean frames is the same whatever
    drives (keep-lane or random, through the rollout loop), where no pixel was clipped."""
    scenario = get_scenario("highway").with_overrides(_with("noise", 2))
    clean_scenario = get_scenario("highway").with_overrides(_with(None))

    def frames(spec: str, where) -> np.ndarray:
        agent = make_agent(spec, where)
        (episode,) = list(iter_episodes(agent, where, [SEED], record_frames=True))
        agent.close()
        return episode.frames.astype(np.int16)

    noisy = {spec: frames(spec, scenario) for spec in ("keep-lane", "random")}
    plain = {spec: frames(spec, clean_scenario) for spec in ("keep-lane", "random")}
    assert np.array_equal(noisy["keep-lane"][0], noisy["random"][0])
    steps = min(len(noisy["keep-lane"]), len(noisy["random"]))
    assert steps >= 3
    assert not np.array_equal(plain["keep-lane"][steps - 1], plain["random"][steps - 1])
    residual = {s: noisy[s][:steps] - plain[s][:steps] for s in noisy}
    inside = np.ones(residual["random"].shape, dtype=bool)
    for s in noisy:
        inside &= (noisy[s][:steps] > 0) & (noisy[s][:steps] < 255)
    assert inside.mean() > 0.5
    assert np.array_equal(residual["keep-lane"][inside], residual["random"][inside])


def test_scene_and_metrics_are_ground_truth_untouched(clean):
    _, clean_infos = clean
    overrides = {
        **TINY,
        "nuisance": [{"kind": k, "severity": 3} for k in KINDS],
    }
    _, infos = _drive(overrides, ZERO)
    assert len(infos) == len(clean_infos)
    for info, ref in zip(infos, clean_infos, strict=True):
        assert info["metrics"] == ref["metrics"]  # the speedometer included
        np.testing.assert_equal(dataclasses.asdict(info["scene"]), dataclasses.asdict(ref["scene"]))
        np.testing.assert_equal(info["idm_action"], ref["idm_action"])


def test_rgb_observations_are_corrupted_frame_by_frame():
    observation = {"kind": "rgb", "width": 64, "height": 32, "stack": 2}
    clean_obs, _ = _drive(_with(None, observation=observation), ZERO[:2])
    observations, _ = _drive(_with("blotches", 3, observation=observation), ZERO[:2])
    assert observations[-1].shape == (6, 32, 64)
    for obs, ref in zip(observations, clean_obs, strict=True):
        assert not np.array_equal(obs[-3:], ref[-3:])


def test_gymnasium_contract_holds_with_nuisances():
    overrides = {
        **TINY,
        "nuisance": [{"kind": "dropped-frame", "severity": 3}, {"kind": "noise", "severity": 1}],
    }
    env = envs.make("highway", overrides)
    check_env(env, skip_render_check=True)
    env.close()


def test_the_nuisance_is_recorded_in_the_scenario_overrides():
    overrides = {"nuisance": {"kind": "blur", "severity": 1}}
    scenario = get_scenario("highway").with_overrides(overrides)
    record = json.loads(json.dumps(scenario.to_dict()))
    assert record["overrides"] == overrides
    assert envs.Scenario.from_record(record).overrides == overrides


@pytest.mark.parametrize(
    ("value", "needles"),
    [
        ({"kind": "fog", "severity": 1}, ["unknown nuisance kind 'fog'", "blur", "dropped-frame"]),
        ({"kind": "blur", "severity": 4}, ["severity must be an integer 1..3", "4"]),
        ({"kind": "blur", "severity": "2"}, ["severity must be an integer 1..3"]),
        ({"kind": "blur", "severity": True}, ["severity must be an integer 1..3"]),
        ({"kind": "blur"}, ["exactly the keys 'kind' and 'severity'"]),
        ("blur", ["must be a mapping like"]),
        ([], ["must not be an empty list"]),
        ([{"kind": "noise", "severity": 1}, {"kind": "noise", "severity": 2}], ["given twice"]),
    ],
)
def test_bad_nuisance_overrides_are_one_line_errors(value, needles):
    with pytest.raises(UserError) as caught:
        get_scenario("highway").with_overrides({"nuisance": value})
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_collect_refuses_a_nuisance_unless_asked_and_records_it(tmp_path, driving_cli):
    overrides = json.dumps(_with("noise", 1, duration=1))
    args = ["--agent", "keep-lane", "--episodes", "1", "--overrides", overrides, "--quiet"]
    result = driving_cli(["collect", *args, "--out", str(tmp_path / "refused")])
    assert_one_line_error(result, "--with-nuisance", "noise 1")
    assert not (tmp_path / "refused" / "manifest.json").exists()
    out = tmp_path / "asked"
    assert collect_command.main([*args, "--out", str(out), "--with-nuisance"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"]["overrides"]["nuisance"] == {"kind": "noise", "severity": 1}


def test_watch_shows_the_corrupted_observation_under_the_clean_simulator_view(monkeypatch):
    recorded: dict[str, list] = {}

    def keep(path, frames, fps):
        recorded[str(path)] = frames
        return len(frames)

    monkeypatch.setattr(viewer, "write_video", keep)
    for name, kind in (("clean", None), ("blotches", "blotches")):
        scenario = get_scenario("highway").with_overrides(_with(kind, 3, duration=1))
        agent = make_agent("keep-lane", scenario)
        viewer.watch(agent, scenario, [SEED], record=name)
    clean_view, blotched_view = recorded["clean"][0], recorded["blotches"][0]
    assert clean_view.shape == blotched_view.shape
    env = envs.make("highway", _with(None, duration=1), render_mode="rgb_array")
    env.reset(seed=SEED)
    sim_height = env.render().shape[0]
    env.close()
    assert np.array_equal(clean_view[:sim_height], blotched_view[:sim_height])
    height, width = 64 * 3, 160 * 3  # the inset: the observation enlarged 3x
    inset = (slice(sim_height, sim_height + height), slice(0, width))
    assert _mad(clean_view[inset], blotched_view[inset]) > 1.0


def test_dagger_rounds_refuse_a_nuisance_unless_asked():
    from driving.train.dagger import DAgger

    blur = {"nuisance": {"kind": "blur", "severity": 1}}
    with pytest.raises(UserError, match="with_nuisance"):
        DAgger(overrides=blur)
    assert DAgger(overrides=blur, with_nuisance=True).overrides == blur
