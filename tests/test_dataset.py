"""The dataset format: write shards of real episodes, read them back canonically, catch damage."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from agents.registry import make_agent
from driving.dataset import FIELDS, DatasetWriter, DemoDataset, verify_dataset
from driving.rollout import Episode, rollout
from envs.errors import UserError
from envs.scenarios import get_scenario
from tests.support import TINY

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    """Three tiny real highway episodes driven and labelled by the IDM baseline."""
    scenario = get_scenario("highway").with_overrides(TINY)
    agent = make_agent("idm", scenario)
    return rollout(agent, scenario, SEEDS, expert=agent, record_frames=True)


def write(root: Path, episodes: list[Episode], groups: list[list[int]]) -> DemoDataset:
    scenario = get_scenario("highway").with_overrides(TINY)
    writer = DatasetWriter.create(root, scenario, {"agent": "idm"}, SEEDS, {"noise": None})
    by_seed = {e.seed: e for e in episodes}
    for k, group in enumerate(groups):
        writer.add([by_seed[s] for s in group], {"round": k})
    assert writer.done_seeds() == set(SEEDS)
    return DemoDataset(root)


def test_round_trip_is_canonical_and_lossless(tmp_path: Path, episodes: list[Episode]) -> None:
    one = write(tmp_path / "one", episodes, [[0, 1, 2]])
    two = write(tmp_path / "two", episodes, [[2, 0], [1]])
    n = sum(e.steps for e in episodes)
    assert len(one) == len(two) == n
    assert one.frames.shape == (n, *one.scenario.observation.shape)
    assert one.frames.dtype == np.uint8
    assert one.scenario.overrides == TINY
    for f in FIELDS:
        a = one.frames if f.name == "frames" else getattr(one, f.name)
        b = two.frames if f.name == "frames" else getattr(two, f.name)
        assert a.dtype == np.dtype(f.dtype) and a.tobytes() == b.tobytes(), f.name
    # canonical order: by seed then step, the episode's own arrays byte for byte
    for e in episodes:
        idx = two.indices([e.seed])
        assert np.array_equal(two.step[idx], np.arange(e.steps))
        assert two.frames[idx].tobytes() == e.frames.tobytes()
        assert np.array_equal(two.frames_at(idx), e.frames)
        assert np.array_equal(two.expert_actions[idx], e.expert_actions)
        assert np.array_equal(two.actions[idx], e.actions)
        assert np.allclose(two.speed[idx], e.metrics["speed"][:-1])
        assert np.allclose(two.lane_offset[idx], e.metrics["lane_offset"][:-1])
    mixed = np.array([5, 0, n - 1, 3])
    assert np.array_equal(two.frames_at(mixed), one.frames[mixed])
    assert two.episodes().tolist() == SEEDS
    prov = two.provenance()
    assert [p["seed"] for p in prov] == SEEDS
    assert [p["round"] for p in prov] == [0, 1, 0]
    assert [p["shard"] for p in prov] == ["shard-00000", "shard-00001", "shard-00000"]
    assert two.complete and verify_dataset(two.root) == []
    clone = pickle.loads(pickle.dumps(two))
    assert len(pickle.dumps(two)) < 1000
    assert clone.frames_at(mixed).tobytes() == one.frames[mixed].tobytes()


def test_writer_refuses_duplicates_and_resumes(tmp_path: Path, episodes: list[Episode]) -> None:
    scenario = get_scenario("highway").with_overrides(TINY)
    writer = DatasetWriter.create(tmp_path / "d", scenario, {"agent": "idm"}, SEEDS)
    writer.add(episodes[:1])
    with pytest.raises(ValueError, match="seed 0"):
        writer.add(episodes[:1])
    # leftovers of a killed writer: a temporary shard and an unlisted shard are cleaned away
    (tmp_path / "d" / "shards" / ".tmp-shard-00001-99").mkdir()
    (tmp_path / "d" / "shards" / "shard-00001").mkdir()
    with pytest.raises(UserError, match="being written by another process"):
        DatasetWriter.open(tmp_path / "d")  # the first writer is alive and holds the lock
    del writer
    reopened = DatasetWriter.open(tmp_path / "d")
    assert reopened.done_seeds() == {0} and reopened.missing_seeds() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "d" / "shards").iterdir()) == ["shard-00000"]
    reopened.add(episodes[1:])
    assert DemoDataset(tmp_path / "d").episodes().tolist() == SEEDS
    # appending a round (DAgger): new seeds are requested, then collected
    with pytest.raises(ValueError, match="already requested"):
        reopened.request_seeds([2, 3])
    reopened.request_seeds([3])
    assert reopened.missing_seeds() == [3] and not DemoDataset(tmp_path / "d").complete
    with pytest.raises(UserError, match="already a dataset"):
        DatasetWriter.create(tmp_path / "d", scenario, {}, SEEDS)


def test_damage_is_named(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "d"
    write(root, episodes, [[0], [1, 2]])
    shard = root / "shards" / "shard-00001"
    actions = shard / "actions.npy"
    data = bytearray(actions.read_bytes())
    data[-1] ^= 0xFF
    actions.write_bytes(bytes(data))
    frames = shard / "frames.npy"
    frames.write_bytes(frames.read_bytes()[:-100])
    problems = verify_dataset(root)
    assert len(problems) == 2 and all("shard-00001" in p for p in problems), problems
    with pytest.raises(UserError, match=r"shard-00001/frames\.npy.*truncated"):
        DemoDataset(root)
    (shard / "frames.npy").unlink()
    with pytest.raises(UserError, match=r"frames\.npy is missing"):
        DemoDataset(root)
    np.save(shard / "frames.npy", np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(UserError, match=r"frames\.npy holds float32\[3, 2\], expected uint8"):
        DemoDataset(root)
    (root / "manifest.json").write_text("{broken")
    with pytest.raises(UserError, match=r"manifest\.json is unreadable"):
        DemoDataset(root)
    (root / "manifest.json").unlink()
    with pytest.raises(UserError, match=r"no manifest\.json"):
        DemoDataset(root)
    assert verify_dataset(root) == [f"dataset {root}: no manifest.json (not a dataset folder)"]
