"""Fault injection into real processes: what dies must cost the episode, not the run.

Run alone with ``pytest -m faults``. Each test injects a real fault (a signal to a real worker
process, a full disk, a hostile file) and checks the outcome.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.registry import make_agent
from driving import commands as cli
from driving.dataset import FIELDS, DemoDataset
from driving.files import hold_lock
from driving.rollout import WorkerFailure, iter_episodes, rollout
from envs.scenarios import get_scenario
from tests.fault_callbacks import optimizer_digest
from tests.support import REPO, TINY, assert_one_line_error, run_driving

pytestmark = pytest.mark.faults

SEEDS = [11, 12, 13, 14, 15]


def _killer(at_step: int, victim_seed: int) -> tuple[object, list[int]]:
    """An ``on_step`` hook that SIGKILLs a worker process when ``victim_seed`` reaches a step.

    Which worker runs which slot is not exposed, so it kills the worker of the slot's position
    among the live children (slots are started in order, one process per slot).
    """
    killed: list[int] = []

    def on_step(event) -> None:
        if killed or event.seed != victim_seed or event.step != at_step:
            return
        children = sorted(multiprocessing.active_children(), key=lambda p: p.pid)
        victim = children[event.slot]
        os.kill(victim.pid, signal.SIGKILL)
        killed.append(victim.pid)

    return on_step, killed


def test_a_killed_worker_names_its_seed_and_the_run_carries_on_by_flag():
    scenario = get_scenario("highway").with_overrides(TINY)
    agent = make_agent("idm", scenario)
    reference = {ep.seed: ep for ep in rollout(agent, scenario, SEEDS)}

    on_step, killed = _killer(at_step=4, victim_seed=12)
    failures: list[tuple[int, str]] = []
    survived = {
        ep.seed: ep
        for ep in iter_episodes(
            agent,
            scenario,
            SEEDS,
            workers=2,
            on_step=on_step,
            on_failure=lambda seed, reason: failures.append((seed, reason)),
        )
    }
    assert killed, "the hook never fired"
    assert failures == [(12, "worker killed by signal 9")]
    assert sorted(survived) == [11, 13, 14, 15]
    for seed, ep in survived.items():  # the interrupted episode was rerun from its start
        np.testing.assert_array_equal(ep.actions, reference[seed].actions)
        np.testing.assert_array_equal(ep.metrics["x"], reference[seed].metrics["x"])


def test_a_killed_worker_stops_the_run_cleanly_by_default():
    scenario = get_scenario("highway").with_overrides(TINY)
    agent = make_agent("idm", scenario)
    on_step, killed = _killer(at_step=3, victim_seed=13)
    finished = []
    with pytest.raises(WorkerFailure, match="seed 13 \\(worker killed by signal 9\\)") as info:
        for ep in iter_episodes(agent, scenario, SEEDS, workers=2, on_step=on_step):
            finished.append(ep)
    assert killed
    assert all(ep.steps == scenario.steps_per_episode for ep in finished)
    assert 13 not in {ep.seed for ep in finished}
    assert 13 not in info.value.interrupted
    assert not multiprocessing.active_children(), "workers left running"


# -- collection killed at random moments ---------------------------------------------------------


def _collect_args(out: Path, episodes: int = 6) -> list[str]:
    return [
        "collect", "--agent", "idm", "--episodes", str(episodes), "--workers", "2",
        "--shard-episodes", "1", "--noise-steer", "0.05", "--overrides", json.dumps(TINY),
        "--out", str(out), "--quiet",
    ]  # fmt: skip


def _same_dataset(a: Path, b: Path) -> None:
    x, y = DemoDataset(a), DemoDataset(b)
    assert len(x) == len(y) > 0
    for f in FIELDS:
        assert getattr(x, f.name).tobytes() == getattr(y, f.name).tobytes(), f.name


def test_collection_killed_at_random_moments_resumes_to_the_same_dataset(driving_cli, tmp_path):
    def start(out: Path, args: list[str]) -> tuple[subprocess.Popen, float]:
        """Start ``driving collect``; return it once it is collecting, and when that was."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "driving", *args], cwd=REPO,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while proc.poll() is None and not (out / "manifest.json").exists():
            assert time.monotonic() < deadline, "collection never started"
            time.sleep(0.02)
        return proc, time.monotonic()

    reference = tmp_path / "reference"
    proc, started = start(reference, _collect_args(reference))
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    collecting = time.monotonic() - started  # how long this machine takes to collect
    out = tmp_path / "killed"
    rng = random.Random(7)
    kills = 0
    for attempt in range(4):
        args = _collect_args(out) + (["--resume"] if (out / "manifest.json").exists() else [])
        proc, _ = start(out, args)
        time.sleep(rng.uniform(0.1, 0.7) * collecting)  # a random moment inside the collection
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        if (out / "manifest.json").exists():  # every finished shard is intact after each kill
            verify = driving_cli(["data", "verify", str(out)])
            assert verify.returncode == 0, verify.stdout + verify.stderr
        if attempt == 0:
            assert kills == 1, "the first run finished before it could be killed"
    assert kills >= 2
    final = driving_cli([*_collect_args(out), "--resume"])
    assert final.returncode == 0, final.stderr
    _same_dataset(reference, out)
    assert not list((out / "shards").glob(".tmp*")), "temporary shards left behind"


# -- disk full --------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A real size-limited filesystem (tmpfs), remountable to another size; skipped where the
    test may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mount", *args], capture_output=True, text=True)

    if os.geteuid() != 0 or run("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)).returncode:
        pytest.skip("needs permission to mount a tmpfs")

    def resize(megabytes: float) -> None:
        kib = int(megabytes * 1024)
        assert run("-o", f"remount,size={kib}k", str(mount)).returncode == 0

    yield mount, resize
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_collection_keeps_the_dataset_and_resumes(
    driving_cli, tmp_path, small_disk
):
    mount, resize = small_disk
    reference = tmp_path / "reference"
    assert driving_cli(_collect_args(reference)).returncode == 0
    out = mount / "data"
    resize(0.7)
    full = driving_cli(_collect_args(out))  # 6 shards of ~0.2 MB do not fit in 0.7 MB
    assert full.returncode == 1, full.stderr
    assert "Traceback" not in full.stderr
    assert "disk full" in full.stderr.strip().splitlines()[-1]
    verify = driving_cli(["data", "verify", str(out)])
    assert verify.returncode == 0, verify.stdout + verify.stderr
    kept = DemoDataset(out).episodes()
    assert 0 < len(kept) < 6
    resize(64)
    resumed = driving_cli([*_collect_args(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    _same_dataset(reference, out)


def _train_config(tmp_path: Path, data: Path, run: Path, epochs: int, extra_callbacks=()) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": epochs,
            "default_root_dir": str(run),
            "enable_progress_bar": False,
            "logger": False,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {
                        "dirpath": str(run / "checkpoints"),
                        "save_last": True,
                        "save_top_k": 0,
                        "every_n_train_steps": 2,
                    },
                },
                *extra_callbacks,
            ],
        },
        "model": {"network": {"width": 0.25}, "schedule": "constant"},
        "data": {"root": str(data), "batch_size": 4, "val_fraction": 0.0},
    }
    path = tmp_path / f"train-{epochs}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "data"
    result = run_driving(_collect_args(root, episodes=4))
    assert result.returncode == 0, result.stderr
    return root


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(
    driving_cli, tmp_path, small_disk, tiny_data
):
    mount, resize = small_disk
    run = mount / "run"
    resize(64)
    first = driving_cli(["fit", "--config", str(_train_config(tmp_path, tiny_data, run, 1))])
    assert first.returncode == 0, first.stderr[-2000:]
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    used = sum(p.stat().st_size for p in mount.rglob("*") if p.is_file())
    resize((used + 200_000) / 2**20)  # room for much less than another checkpoint
    again = driving_cli(
        ["fit", "--config", str(_train_config(tmp_path, tiny_data, run, 2)),
         "--ckpt_path", str(last)]
    )  # fmt: skip
    assert again.returncode == 1, again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    assert "disk full" in again.stderr.strip().splitlines()[-1]
    assert last.read_bytes() == before  # the previous checkpoint is intact, and still loads
    torch.load(last, map_location="cpu", weights_only=True)


# -- training killed mid-epoch -------------------------------------------------------------------


def test_training_killed_mid_epoch_resumes_with_the_same_step_and_optimizer(
    driving_cli, tmp_path, tiny_data
):
    run = tmp_path / "run"
    slow = {"class_path": "tests.fault_callbacks.SlowSteps", "init_args": {"seconds": 0.3}}
    config = _train_config(tmp_path, tiny_data, run, 50, [slow])
    proc = subprocess.Popen(
        [sys.executable, "-m", "driving", "fit", "--config", str(config)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not last.exists():
        time.sleep(0.2)
    time.sleep(1.0)  # a few more steps, then mid-epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert last.exists(), "no checkpoint was written before the kill"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    record = tmp_path / "resumed.json"
    probe = {"class_path": "tests.fault_callbacks.RecordResume", "init_args": {"path": str(record)}}
    resumed = driving_cli(
        ["fit", "--config", str(_train_config(tmp_path, tiny_data, run, 1, [probe])),
         "--trainer.max_epochs", str(saved["epoch"] + 2), "--ckpt_path", str(last)]
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    state = json.loads(record.read_text())
    assert state["global_step"] == saved["global_step"] > 0
    assert state["optimizer_digest"] == optimizer_digest(saved["optimizer_states"][0])


# -- hostile and broken files --------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_a_pickle_payload_is_refused_without_running_it(driving_cli, tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "policy": _Payload(marker)}, evil)
    result = driving_cli(["evaluate", "--agent", f"cnn:{evil}", "--episodes", "1",
                          "--out", str(tmp_path / "o")])  # fmt: skip
    assert_one_line_error(result, "evil.ckpt")
    assert not marker.exists(), "the pickle payload ran"


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory, tiny_data) -> Path:
    tmp = tmp_path_factory.mktemp("ckpt")
    run = tmp / "run"
    result = run_driving(["fit", "--config", str(_train_config(tmp, tiny_data, run, 1))])
    assert result.returncode == 0, result.stderr[-2000:]
    return run / "checkpoints" / "last.ckpt"


def test_truncated_checkpoint_is_a_one_line_error(driving_cli, tmp_path, real_checkpoint):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(real_checkpoint.read_bytes()[:5000])
    result = driving_cli(["evaluate", "--agent", f"cnn:{cut}", "--episodes", "1",
                          "--out", str(tmp_path / "o")])  # fmt: skip
    assert_one_line_error(result, "cut.ckpt")


def _copy_dataset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    (dst / "writer.lock").unlink(missing_ok=True)
    return dst


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("dtype", "images.npy"),
        ("shape", "images.npy"),
        ("manifest-key", "manifest.json"),
    ],
)
def test_broken_dataset_files_are_one_line_errors(driving_cli, tmp_path, tiny_data, damage,
                                                  needle):  # fmt: skip
    data = _copy_dataset(tiny_data, tmp_path / "data")
    shard = data / "shards" / "shard-00000"
    images = np.load(shard / "images.npy", allow_pickle=False)
    if damage == "dtype":
        np.save(shard / "images.npy", images.astype(np.float32), allow_pickle=False)
    elif damage == "shape":
        np.save(shard / "images.npy", images[:, :, :10], allow_pickle=False)
    else:
        manifest = json.loads((data / "manifest.json").read_text())
        del manifest["observation"]
        (data / "manifest.json").write_text(json.dumps(manifest))
    config = _train_config(tmp_path, data, tmp_path / "run", 1)
    for args in (["data", "info", str(data)], ["fit", "--config", str(config)]):
        assert_one_line_error(driving_cli(args), needle)


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"model": {"no_such_option": 1}}, "no_such_option"),
        ({"model": {"lr": "fast"}}, "lr"),
        ({"trainer": {"max_epochs": "many"}}, "max_epochs"),
    ],
)
def test_bad_training_config_is_a_one_line_error(driving_cli, tmp_path, tiny_data, edit, needle):
    config = yaml.safe_load(_train_config(tmp_path, tiny_data, tmp_path / "run", 1).read_text())
    for section, values in edit.items():
        config[section].update(values)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert_one_line_error(driving_cli(["fit", "--config", str(path)]), needle)


# -- stop signals: SIGTERM like Ctrl-C, finished work kept -----------------------------------------

LONGER = {"vehicles_count": 8, "duration": 8}
"""Episodes long enough (40 decisions) that a signal lands while the command drives."""


def _start(args: list[str], ready, new_session: bool = False) -> subprocess.Popen:
    """Start ``driving ARGS``; return it once ``ready()`` (it has finished some work)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "driving", *args], cwd=REPO,
        env={**os.environ, "WANDB_MODE": "offline"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=new_session,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while proc.poll() is None and not ready():
        assert time.monotonic() < deadline, "the command never started driving"
        time.sleep(0.02)
    assert proc.poll() is None, "the command finished before the signal: " + proc.stderr.read()
    return proc


def _stopped_cleanly(proc: subprocess.Popen, signum: int, command: str) -> None:
    """Exit status 128 + signal, and one line on stderr saying so (no worker traceback)."""
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, (proc.returncode, err)
    name = signal.Signals(signum).name
    assert err.strip().splitlines() == [f"driving {command}: interrupted by {name}"], err


def _collect_longer(out: Path) -> list[str]:
    return [
        "collect", "--agent", "idm", "--episodes", "8", "--workers", "2", "--shard-episodes", "1",
        "--overrides", json.dumps(LONGER), "--out", str(out), "--quiet",
    ]  # fmt: skip


def _has_a_shard(out: Path) -> bool:
    """Whether the dataset's manifest (its commit point) lists a shard yet."""
    try:
        return bool(json.loads((out / "manifest.json").read_text())["shards"])
    except (OSError, ValueError, KeyError):
        return False


def test_sigterm_stops_collection_and_keeps_the_finished_shards(driving_cli, tmp_path):
    out = tmp_path / "data"
    proc = _start(_collect_longer(out), lambda: _has_a_shard(out))
    proc.send_signal(signal.SIGTERM)
    _stopped_cleanly(proc, signal.SIGTERM, "collect")
    verify = driving_cli(["data", "verify", str(out)])
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert 0 < len(DemoDataset(out).episodes()) < 8
    assert not multiprocessing.active_children()


def test_ctrl_c_to_the_process_group_prints_no_worker_traceback(tmp_path):
    out = tmp_path / "data"
    proc = _start(_collect_longer(out), lambda: _has_a_shard(out), new_session=True)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the group
    _stopped_cleanly(proc, signal.SIGINT, "collect")
    assert DemoDataset(out).episodes().size > 0


def _evaluate_longer(out: Path) -> list[str]:
    return [
        "evaluate", "--agent", "idm", "--episodes", "6", "--workers", "2",
        "--overrides", json.dumps(LONGER), "--out", str(out), "--quiet",
    ]  # fmt: skip


def _episode_rows(out: Path) -> list[dict[str, str]]:
    """``episodes.csv``'s rows without the decision latency (a timing, not an outcome)."""
    with open(out / "episodes.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k != "latency_ms"} for row in csv.DictReader(fh)]


def test_sigterm_stops_evaluation_keeping_its_rows_and_the_same_command_resumes_it(
    driving_cli, tmp_path
):
    out = tmp_path / "eval"
    rows = out / "rows.jsonl"
    proc = _start(_evaluate_longer(out), lambda: rows.exists() and rows.stat().st_size > 0)
    proc.send_signal(signal.SIGTERM)
    _stopped_cleanly(proc, signal.SIGTERM, "evaluate")
    kept = [json.loads(line) for line in rows.read_text().splitlines()]
    assert 0 < len(kept) < 6 and not (out / "summary.json").exists()
    resumed = driving_cli(_evaluate_longer(out))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(kept)} of 6 episodes kept" in resumed.stdout
    reference = driving_cli(_evaluate_longer(tmp_path / "reference"))
    assert reference.returncode == 0, reference.stderr
    assert _episode_rows(out) == _episode_rows(tmp_path / "reference")
    assert not rows.exists()


# -- evaluation folders: another evaluation, a second writer, the umask ---------------------------


def _evaluate_in_process(out: Path, *extra: str, overrides=TINY) -> int:
    args = ["evaluate", "--agent", "idm", "--episodes", "1", "--overrides", json.dumps(overrides),
            "--out", str(out), "--quiet", *extra]  # fmt: skip
    return cli.main(args)


def test_an_evaluation_folder_is_refused_to_another_evaluation_and_to_a_second_writer(
    tmp_path, capsys
):
    out = tmp_path / "eval"
    old = os.umask(0o002)
    try:
        assert _evaluate_in_process(out) == 0
    finally:
        os.umask(old)
    for name in ("episodes.csv", "summary.json", "evaluation.json"):  # the umask, not 0600
        assert (out / name).stat().st_mode & 0o777 == 0o664, name
    other = {**TINY, "vehicles_count": 6}
    capsys.readouterr()
    assert _evaluate_in_process(out, overrides=other) == 2
    assert "another evaluation" in capsys.readouterr().err
    with hold_lock(out / "evaluate.lock", "held by the test"):
        assert _evaluate_in_process(out, "--overwrite", overrides=other) == 2
    assert "being written by another" in capsys.readouterr().err
    assert _evaluate_in_process(out, "--overwrite", overrides=other) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overrides"] == other


# -- a read-only location ------------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only location: a read-only tmpfs as root (chmod does not bind root), a
    folder of mode 0o555 otherwise."""
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() != 0:
        where.chmod(0o555)
        yield where, "Permission denied"
        where.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip("running as root, where chmod does not bind, and no permission to mount")
    yield where, "Read-only file system"
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.parametrize(
    "args",
    [
        ["collect", "--agent", "idm", "--episodes", "1", "--out", "{ro}/data"],
        ["evaluate", "--agent", "idm", "--episodes", "1", "--out", "{ro}/eval"],
        ["watch", "--agent", "idm", "--expert", "none", "--record", "{ro}/v.mp4"],
    ],
    ids=["collect", "evaluate", "watch"],
)
def test_a_read_only_location_is_a_one_line_error_before_any_work(read_only_dir, args, capsys):
    where, reason = read_only_dir
    started = time.monotonic()
    status = cli.main([a.format(ro=where) for a in args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and reason in err and str(where) in err, err
    assert time.monotonic() - started < 5, "it drove before refusing"


# -- checkpoints that are not checkpoints, or not for this scenario -------------------------------


def test_a_text_file_is_not_a_checkpoint(tmp_path, capsys):
    notes = tmp_path / "notes.ckpt"
    notes.write_text("the best run so far\n")
    args = ["evaluate", "--agent", f"cnn:{notes}", "--episodes", "1", "--out", str(tmp_path / "o")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.ckpt is truncated or not a checkpoint" in err, err


def test_fit_resuming_from_a_truncated_checkpoint_is_a_one_line_error(
    driving_cli, tmp_path, tiny_data, real_checkpoint
):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(real_checkpoint.read_bytes()[:5000])
    config = _train_config(tmp_path, tiny_data, tmp_path / "run", 1)
    result = driving_cli(["fit", "--config", str(config), "--ckpt_path", str(cut)])
    assert_one_line_error(result, "cut.ckpt")


def test_a_checkpoint_at_another_control_frequency_is_refused(
    driving_cli, tmp_path, real_checkpoint
):
    faster = {**TINY, "policy_frequency": 15}
    result = driving_cli(["evaluate", "--agent", f"cnn:{real_checkpoint}", "--episodes", "1",
                          "--overrides", json.dumps(faster),
                          "--out", str(tmp_path / "o")])  # fmt: skip
    assert_one_line_error(result, "5 decisions/s", "15/s")
