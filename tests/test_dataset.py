"""The dataset format: write shards of real episodes, read them back canonically, catch damage."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from agents.registry import make_agent
from driving.commands import main as driving_main
from driving.dataset import (
    FIELDS,
    DatasetWriter,
    DemoDataset,
    UnsafePath,
    convert_dataset,
    verify_dataset,
)
from driving.rollout import Episode, rollout
from envs.errors import UserError
from envs.scenarios import get_scenario
from tests.support import TINY, assert_one_line_error

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    """Three tiny real highway episodes driven and labelled by the IDM baseline."""
    scenario = get_scenario("highway").with_overrides(TINY)
    agent = make_agent("idm", scenario)
    return rollout(agent, scenario, SEEDS, expert=agent, record_frames=True)


def write(
    root: Path, episodes: list[Episode], groups: list[list[int]], version: int = 2
) -> DemoDataset:
    scenario = get_scenario("highway").with_overrides(TINY)
    writer = DatasetWriter.create(
        root, scenario, {"agent": "idm"}, SEEDS, {"noise": None}, version=version
    )
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


def assert_same_arrays(a: DemoDataset, b: DemoDataset) -> None:
    assert len(a) == len(b) > 0
    for f in FIELDS:
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f.name
    every = np.arange(len(a))[::-1]
    assert a.frames_at(every).tobytes() == b.frames_at(every).tobytes()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    """``driving ARGS`` run in this process (the real entry point, without a subprocess's
    start-up), as a finished process for :func:`tests.support.assert_one_line_error`."""
    capsys.readouterr()
    status = driving_main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out.out, out.err)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (to show a folder was not touched)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_v1_and_v2_read_back_the_same_bytes(tmp_path: Path, episodes: list[Episode]) -> None:
    scenario = get_scenario("highway").with_overrides(TINY)
    writer = DatasetWriter.create(tmp_path / "v1", scenario, {"agent": "idm"}, SEEDS, version=1)
    writer.add([episodes[2], episodes[0]])
    del writer
    DatasetWriter.open(tmp_path / "v1").add([episodes[1]])  # resumed in its own layout
    v1 = DemoDataset(tmp_path / "v1")
    v2 = write(tmp_path / "v2", episodes, [[0, 1, 2]])
    assert (v1.version, v2.version) == (1, 2)
    for shard in ("shard-00000", "shard-00001"):
        assert (tmp_path / "v1" / "shards" / shard / "frames.npy").is_file()
    assert_same_arrays(v1, v2)
    assert np.array_equal(v2.frames_at(v2.indices([1])), episodes[1].frames)
    # each image plane once: at most one new plane per step, plus one shared zero image for
    # the padding of the reset stacks (C - 1 zero planes, then the first frame)
    entry = v2.manifest["shards"][0]
    steps, channels = len(v2), v2.scenario.observation.channels
    assert entry["images"] <= steps + 1 < steps * channels / 3
    stack = np.load(tmp_path / "v2" / "shards" / "shard-00000" / "stack.npy")
    images = np.load(tmp_path / "v2" / "shards" / "shard-00000" / "images.npy")
    assert stack.dtype == np.int32 and stack.shape == (steps, channels)
    first = v2.indices([0])[0]
    assert len(set(stack[first, :-1])) == 1 and not images[stack[first, 0]].any()
    assert "padding" in v2.manifest["storage"]
    assert set(v2.manifest["fields"]) == {"images", "stack"} | {f.name for f in FIELDS[1:]}
    assert verify_dataset(v1.root) == [] and verify_dataset(v2.root) == []


def test_convert_makes_a_verified_v2_copy_and_leaves_the_source(
    tmp_path: Path, episodes: list[Episode], capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "v1"
    v1 = write(src, episodes, [[0], [1, 2]], version=1)
    before = tree_digest(src)
    (tmp_path / "empty").mkdir()
    line = convert_dataset(src, tmp_path / "empty")
    assert "version 2 copy" in line and "every frame stack equals the source" in line
    v2 = DemoDataset(tmp_path / "empty")
    assert v2.version == 2 and verify_dataset(v2.root) == []
    assert_same_arrays(v1, v2)
    for x, y in zip(v1.shard_frames, v2.shard_frames, strict=True):
        assert x.tobytes() == y.tobytes()
    assert [e["name"] for e in v2.manifest["shards"]] == ["shard-00000", "shard-00001"]
    assert v2.manifest["episodes"] == v1.manifest["episodes"]
    assert v2.manifest["converted_from"]["version"] == 1
    assert tree_digest(src) == before
    # the copy resumes like any dataset
    writer = DatasetWriter.open(v2.root)
    writer.request_seeds([3])
    assert writer.missing_seeds() == [3]
    del writer
    with pytest.raises(UserError, match="exists and is not empty"):
        convert_dataset(src, tmp_path / "empty")
    with pytest.raises(UserError, match="inside the source"):
        convert_dataset(src, src / "copy")
    flip_byte(src / "shards" / "shard-00001" / "frames.npy", -1)
    with pytest.raises(UserError, match=r"fails verification.*frames\.npy: checksum mismatch"):
        convert_dataset(src, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    # the command: one line, exit 0; a bad DST is a one-line error, exit 2
    flip_byte(src / "shards" / "shard-00001" / "frames.npy", -1)  # repaired
    ok = cli(capsys, "data", "convert", str(src), str(tmp_path / "cli"))
    assert ok.returncode == 0 and "every frame stack equals the source" in ok.stdout, ok.stderr
    bad = cli(capsys, "data", "convert", str(src), str(tmp_path / "cli"))
    assert_one_line_error(bad, "exists and is not empty")
    assert tree_digest(src) == before


def test_writer_refuses_duplicates_and_resumes(tmp_path: Path, episodes: list[Episode]) -> None:
    scenario = get_scenario("highway").with_overrides(TINY)
    writer = DatasetWriter.create(tmp_path / "d", scenario, {"agent": "idm"}, SEEDS)
    writer.add(episodes[:1])
    with pytest.raises(ValueError, match="seed 0"):
        writer.add(episodes[:1])
    # leftovers of a killed writer: its temporary shard and manifest are cleaned away; a shard
    # renamed into place but never listed, and a stranger's file, are left alone (warned)
    shards = tmp_path / "d" / "shards"
    (shards / ".tmp-shard-00001-99").mkdir()
    (shards / "shard-00001").mkdir()
    (shards / "notes.txt").write_text("mine")
    (tmp_path / "d" / ".tmp-manifest.abc123.json").write_text("{")
    with pytest.raises(UserError, match="being written by another process"):
        DatasetWriter.open(tmp_path / "d")  # the first writer is alive and holds the lock
    del writer
    with pytest.warns(UserWarning, match=r"does not list, left alone: notes\.txt, shard-00001"):
        reopened = DatasetWriter.open(tmp_path / "d")
    assert reopened.done_seeds() == {0} and reopened.missing_seeds() == [1, 2]
    assert sorted(p.name for p in shards.iterdir()) == ["notes.txt", "shard-00000", "shard-00001"]
    assert not (tmp_path / "d" / ".tmp-manifest.abc123.json").exists()
    assert (shards / "notes.txt").read_text() == "mine"
    assert reopened.add(episodes[1:]) == "shard-00002"  # the unlisted name is skipped
    assert DemoDataset(tmp_path / "d").episodes().tolist() == SEEDS
    # appending a round (DAgger): new seeds are requested, then collected
    with pytest.raises(ValueError, match="already requested"):
        reopened.request_seeds([2, 3])
    reopened.request_seeds([3])
    assert reopened.missing_seeds() == [3] and not DemoDataset(tmp_path / "d").complete
    with pytest.raises(UserError, match="already a dataset"):
        DatasetWriter.create(tmp_path / "d", scenario, {}, SEEDS)


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damage_is_named(tmp_path: Path, episodes: list[Episode]) -> None:
    root = tmp_path / "d"
    write(root, episodes, [[0], [1, 2]])
    shard = root / "shards" / "shard-00001"
    flip_byte(shard / "actions.npy", -1)
    images = shard / "images.npy"
    flip_byte(images, len(images.read_bytes()) // 2)  # a corrupted image, same size
    problems = verify_dataset(root)
    assert len(problems) == 2 and all("shard-00001" in p for p in problems), problems
    assert "images.npy: checksum mismatch" in problems[0], problems
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(UserError, match=r"shard-00001/images\.npy.*truncated"):
        DemoDataset(root)
    images.unlink()
    with pytest.raises(UserError, match=r"images\.npy is missing"):
        DemoDataset(root)
    np.save(images, np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(UserError, match=r"images\.npy holds float32\[3, 2\], expected uint8"):
        DemoDataset(root)
    stack = np.load(root / "shards" / "shard-00000" / "stack.npy")
    stack[-1, -1] = stack.max() + 1
    np.save(root / "shards" / "shard-00000" / "stack.npy", stack)
    with pytest.raises(UserError, match=r"stack\.npy indexes rows outside images\.npy"):
        DemoDataset(root)
    (root / "manifest.json").write_text("{broken")
    with pytest.raises(UserError, match=r"manifest\.json is unreadable"):
        DemoDataset(root)
    (root / "manifest.json").unlink()
    with pytest.raises(UserError, match=r"no manifest\.json"):
        DemoDataset(root)
    assert verify_dataset(root) == [f"dataset {root}: no manifest.json (not a dataset folder)"]


def point_shard(root: Path, name: str) -> None:
    """Make the manifest of dataset ``root`` name its first shard ``name``."""
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"][0]["name"] = name
    (root / "manifest.json").write_text(json.dumps(manifest))


def assert_refused(root: Path, needle: str) -> None:
    """Every reader refuses dataset ``root`` with an :class:`UnsafePath` naming ``needle``."""
    for read in (DemoDataset, verify_dataset, DatasetWriter.open):
        with pytest.raises(UnsafePath, match=needle):
            read(root)


def test_nothing_outside_the_folder_is_read(
    tmp_path: Path, episodes: list[Episode], capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    write(outside, episodes, [[0, 1, 2]])  # an intact dataset a bad manifest could point to
    before = tree_digest(outside)
    root = tmp_path / "a" / "b"
    write(root, episodes, [[0, 1, 2]])
    point_shard(root, "../../../outside/shards/shard-00000")
    assert_refused(root, r"lists shard '\.\./\.\./\.\./outside.*shard-NNNNN")
    result = cli(capsys, "data", "verify", str(root))
    assert_one_line_error(result, "shard-NNNNN")
    assert "OK" not in result.stdout
    point_shard(root, str(outside / "shards" / "shard-00000"))
    assert_refused(root, "lists shard '/")
    # a shard symlinked out of the folder, under a good name
    point_shard(root, "shard-00000")
    shard = root / "shards" / "shard-00000"
    for path in shard.iterdir():
        path.unlink()
    shard.rmdir()
    shard.symlink_to(outside / "shards" / "shard-00000")
    assert_refused(root, "shard .*shard-00000 leads outside the folder")
    # a shard file symlinked out of the folder
    shard.unlink()
    shard.mkdir()
    for path in (outside / "shards" / "shard-00000").iterdir():
        (shard / path.name).symlink_to(path)
    for read in (DemoDataset, verify_dataset):
        with pytest.raises(UnsafePath, match=r"shard file .*images\.npy leads outside"):
            read(root)
    assert tree_digest(outside) == before


def test_resume_never_follows_a_symlinked_shards_folder(
    tmp_path: Path, episodes: list[Episode]
) -> None:
    scenario = get_scenario("highway").with_overrides(TINY)
    writer = DatasetWriter.create(tmp_path / "d", scenario, {"agent": "idm"}, SEEDS)
    writer.add(episodes[:1])
    del writer
    elsewhere = tmp_path / "elsewhere"
    os.rename(tmp_path / "d" / "shards", elsewhere)
    (elsewhere / "precious.txt").write_text("keep")
    (elsewhere / ".tmp-shard-00001-7").mkdir()  # even a name of the writer's rule
    (tmp_path / "d" / "shards").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    with pytest.raises(UnsafePath, match=r"shards folder .* leads outside the folder"):
        DatasetWriter.open(tmp_path / "d")
    assert sorted(p.name for p in elsewhere.iterdir()) == before
    with pytest.raises(UnsafePath):
        DemoDataset(tmp_path / "d")
    # a new dataset is not created through a symlinked (empty) shards folder either
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "shards").symlink_to(empty)
    with pytest.raises(UserError, match="non-empty folder"):
        DatasetWriter.create(tmp_path / "new", scenario, {}, SEEDS)
