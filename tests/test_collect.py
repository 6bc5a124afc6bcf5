"""``driving collect`` and ``driving data``: real subprocess runs on tiny highway episodes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from driving.commands import main as driving_main
from driving.dataset import FIELDS, LAYOUTS, DemoDataset
from tests.support import REPO, TINY, assert_one_line_error, run_driving

EPISODES = 5
NOISE = ["--noise-steer", "0.2", "--noise-accel", "0.1"]


def collect_args(out: Path, *extra: str) -> list[str]:
    return [
        "collect",
        "--agent",
        "idm",
        "--episodes",
        str(EPISODES),
        "--overrides",
        json.dumps(TINY),
        "--out",
        str(out),
        "--quiet",
        *NOISE,
        *extra,
    ]


def listed_shards(root: Path) -> list[dict]:
    """The shards the manifest lists (it is replaced atomically, so always whole)."""
    try:
        return json.loads((root / "manifest.json").read_text())["shards"]
    except FileNotFoundError:
        return []


def assert_same_arrays(a: DemoDataset, b: DemoDataset) -> None:
    assert len(a) == len(b) > 0
    for f in FIELDS:
        x = a.frames if f.name == "frames" else getattr(a, f.name)
        y = b.frames if f.name == "frames" else getattr(b, f.name)
        assert x.dtype == y.dtype and x.shape == y.shape, f.name
        rows = np.flatnonzero((x != y).reshape(len(x), -1).any(axis=1))
        assert rows.size == 0, f"{f.name} differs in rows {rows.tolist()} of {len(x)}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    """An uninterrupted collection with one worker."""
    out = tmp_path_factory.mktemp("ref") / "data"
    result = run_driving(collect_args(out, "--workers", "1"))
    assert result.returncode == 0, result.stderr
    return DemoDataset(out)


def test_two_workers_give_the_same_bytes(reference: DemoDataset, tmp_path: Path) -> None:
    result = run_driving(collect_args(tmp_path / "d", "--workers", "2", "--shard-episodes", "2"))
    assert result.returncode == 0, result.stderr
    assert f"wrote {EPISODES} episodes" in result.stdout
    data = DemoDataset(tmp_path / "d")
    assert_same_arrays(reference, data)
    assert data.episodes().tolist() == list(range(EPISODES))
    assert len(data.manifest["shards"]) == 3
    # DART: the executed steering is perturbed, the label is the expert's clean action
    assert np.abs(data.actions[:, 1] - data.expert_actions[:, 1]).mean() > 0.05
    assert np.array_equal(data.agent_actions, data.expert_actions)
    collect = data.manifest["extra"]["collect"]
    assert collect["noise"]["std"] == {"accel": 0.1, "steer": 0.2}
    assert data.manifest["counts"] == {"episodes": EPISODES, "frames": len(data)}
    assert set(data.manifest["shards"][0]["sha256"]) == {f.name for f in LAYOUTS[2]}
    info = run_driving(["data", "info", str(tmp_path / "d")])
    assert info.returncode == 0, info.stderr
    assert "scenario     highway" in info.stdout and f"{EPISODES} of {EPISODES}" in info.stdout


def test_killed_collection_resumes_to_the_same_result(
    reference: DemoDataset, tmp_path: Path
) -> None:
    out = tmp_path / "d"
    proc = subprocess.Popen(
        [sys.executable, "-m", "driving", *collect_args(out, "--shard-episodes", "1")],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not listed_shards(out):
            assert proc.poll() is None, "collection ended before it could be killed"
            assert time.monotonic() < deadline, "no shard appeared"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    partial = DemoDataset(out)  # every listed shard is readable after a SIGKILL
    assert 0 < len(partial.episodes()) < EPISODES and not partial.complete
    result = run_driving([*collect_args(out, "--workers", "2"), "--resume"])
    assert result.returncode == 0, result.stderr
    resumed = DemoDataset(out)
    assert resumed.complete
    assert sorted(resumed.manifest["seeds"]["done"]) == list(range(EPISODES))
    assert_same_arrays(reference, resumed)
    again = run_driving([*collect_args(out), "--resume"])
    assert again.returncode == 0 and "already collected" in again.stdout


def test_verify_names_bad_shards(reference: DemoDataset, tmp_path: Path) -> None:
    ok = run_driving(["data", "verify", str(reference.root)])
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout + ok.stderr
    out = tmp_path / "d"
    result = run_driving(collect_args(out, "--shard-episodes", "2"))
    assert result.returncode == 0, result.stderr
    truncated = out / "shards" / "shard-00000" / "images.npy"
    truncated.write_bytes(truncated.read_bytes()[:-4096])
    altered = out / "shards" / "shard-00002" / "expert_actions.npy"
    data = bytearray(altered.read_bytes())
    data[-3] ^= 0x01
    altered.write_bytes(bytes(data))
    bad = run_driving(["data", "verify", str(out)])
    assert bad.returncode == 1, bad.stdout + bad.stderr
    problems = [line for line in bad.stdout.splitlines() if line.startswith("BAD")]
    assert len(problems) == 2, bad.stdout
    assert "shard-00000/images.npy" in problems[0] and "shard-00002/expert_actions" in problems[1]
    assert "shard-00001" not in bad.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--agent", "nope", "--episodes", "2"], "unknown agent 'nope'"),
        (["--agent", "idm", "--episodes", "0"], "--episodes"),
        (["--agent", "idm", "--seeds", "1000000:1000002"], "evaluation seeds"),
        (["--agent", "idm", "--episodes", "2", "--out", "{tmp}"], "non-empty folder"),
        (["--agent", "random", "--episodes", "2", "--resume", "--out", "{ref}"], "--agent"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    args: list[str], needle: str, tmp_path: Path, reference: DemoDataset
) -> None:
    (tmp_path / "notes.txt").write_text("not a dataset")
    args = [a.format(tmp=tmp_path, ref=reference.root) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "new")]
    result = run_driving(["collect", *args, "--overrides", json.dumps(TINY)])
    assert_one_line_error(result, needle)
    assert not (tmp_path / "new").exists()


def test_bench_collect_prints_both_worker_counts_and_the_extrapolation(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "collect", "--agent", "idm", "--overrides", json.dumps(TINY)]
    result = run_driving([*args, "--episodes", "2", "--frames", "40", "--json", str(out)])
    assert result.returncode == 0, result.stderr
    assert "speed-up with 2 workers" in result.stdout
    assert "EXTRAPOLATED (linear from 45 frames, not measured) to 50000" in result.stdout
    figures = json.loads(out.read_text())
    assert [r["workers"] for r in figures["workers"]] == [1, 2]
    assert figures["dataset"]["frames"] == 45
    assert 45 * 8 * 1024 < figures["dataset"]["bytes"] < 45 * 40960 / 3  # each image once


def test_a_killed_worker_keeps_finished_episodes_and_resume_completes(
    reference: DemoDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SIGKILL to one environment worker: one-line error, exit 1, nothing lost."""
    out = tmp_path / "d"
    killed: list[int] = []

    def kill_a_worker_after_the_first_shard() -> None:
        deadline = time.monotonic() + 60
        while not listed_shards(out) and time.monotonic() < deadline:
            time.sleep(0.002)
        children = multiprocessing.active_children()
        if children:
            os.kill(children[0].pid, signal.SIGKILL)
            killed.append(children[0].pid)

    killer = threading.Thread(target=kill_a_worker_after_the_first_shard)
    killer.start()
    status = driving_main(collect_args(out, "--workers", "2", "--shard-episodes", "1"))
    killer.join()
    assert killed and status == 1
    err = capsys.readouterr().err
    assert "environment worker failed on seed" in err and "--resume" in err
    partial = DemoDataset(out)
    assert 0 < len(partial.episodes()) < EPISODES
    assert driving_main([*collect_args(out), "--resume"]) == 0
    assert_same_arrays(reference, DemoDataset(out))
