"""The store: datasets and trained policies named by what decides them, shared by recipes.

``driving curve`` and ``driving suite`` build the same expensive things (an expert's
demonstrations on a scenario, a network trained from scratch on the first ``labels`` of them) and
find them again by their key, so a recipe that shares a point with another (a curve's point as a
suite's CNN, more seeds, another scenario's curve) reuses it without anyone copying a key:

- ``data/<digest>/dataset``: the expert's demonstrations on the training seeds in order, keyed
  by the scenario, the expert and the executed-action noise; grown, never rebuilt, when a recipe
  asks for more frames;
- ``points/<digest>``: one trained policy, keyed by its data's key, its budget of labels, its
  training config, steps and seed; reused once its ``done`` marker is written;
- ``dagger/<digest>``: DAgger aggregates (:mod:`driving.train.curve`);
- ``evaluations/``: :mod:`driving.eval_cache` folders.

The one training rule (issue 21): a point is trained FROM SCRATCH for ``steps`` gradient steps
(the train config's batch size, optimiser and schedule, the schedule counted in steps) on
exactly its budget of expert-labelled frames (``max_frames``: the first frames in the canonical
(seed, step) order), with no validation split and no model selection (the last checkpoint
counts). On a steer-only scenario (racetrack) the config's acceleration settings have nothing
to act on and are dropped: no braking oversampling (``brake_weight`` 1) and one loss component
(``action_weights`` none), so one shipped config trains on every scenario.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from agents.registry import make_agent
from driving.collection import collect
from driving.dataset import DatasetWriter, read_manifest
from driving.files import atomic_write_text
from driving.mixers import DartNoise
from driving.train.cli import fit
from envs.errors import UserError
from envs.scenarios import Scenario


def json_ready(key: dict[str, Any]) -> dict[str, Any]:
    """``key`` as it reads back from JSON (tuples as lists, paths as strings)."""
    return json.loads(json.dumps(key, sort_keys=True, default=str))


def key_digest(key: dict[str, Any]) -> str:
    """The 20 hex digits that name the folder of ``key`` (SHA-256 of its sorted JSON)."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class Store:
    """Folders named by the digest of what decides their content (``key.json`` inside).

    Args:
        root: the store's folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, kind: str, key: dict[str, Any]) -> Path:
        """``root/kind/<digest of key>``, created with its ``key.json`` (a :class:`UserError`
        when a folder of that name holds another key)."""
        path = self.root / kind / key_digest(key)
        key_file = path / "key.json"
        if key_file.exists():
            if json.loads(key_file.read_text()) != json_ready(key):
                raise UserError(f"store folder {path} holds another key; remove it")
        else:
            path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(key_file, json.dumps(json_ready(key), indent=1, sort_keys=True))
        return path

    @property
    def evaluations(self) -> Path:
        """Where the evaluation folders of every recipe go."""
        return self.root / "evaluations"


def load_train_config(path: str) -> dict[str, Any]:
    """The LightningCLI config (a mapping) every point of a recipe starts from."""
    try:
        base = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"cannot read train_config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"train_config {path} is not valid YAML: {exc}") from None
    if not isinstance(base, dict):
        raise UserError(f"train_config {path} must hold a mapping (a LightningCLI config)")
    return base


def _train_config(
    base: dict[str, Any], run: Path, data: Path, steps: int, labels: int, seed: int
) -> dict[str, Any]:
    """The shared training config for one point: from scratch, ``steps`` gradient steps on the
    first ``labels`` frames of ``data`` (no validation split), training seed ``seed``, a CSV
    logger and the last checkpoint in ``run``, no closed-loop validation (the recipe
    evaluates)."""
    config = yaml.safe_load(yaml.safe_dump(base))
    config["seed_everything"] = seed
    trainer = config.setdefault("trainer", {})
    trainer.update(max_steps=steps, max_epochs=-1, default_root_dir=str(run))
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(run), "name": "logs"},
    }
    trainer["callbacks"] = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {
                "dirpath": str(run / "checkpoints"),
                "save_last": True,
                "save_top_k": 0,
                "enable_version_counter": False,
            },
        }
    ]
    config.setdefault("model", {})["init_from"] = None
    config.setdefault("data", {}).update(root=str(data), val_fraction=0.0, max_frames=labels)
    return config


def _fitted_to_action(config: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """``config`` without the acceleration settings when the action ``names`` have no
    ``accel`` (see the module docstring)."""
    if "accel" in names:
        return config
    config = copy.deepcopy(config)
    config.setdefault("data", {})["brake_weight"] = 1.0
    config.setdefault("model", {})["action_weights"] = None
    return config


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mapping by mapping (a recipe's ``train_overrides``
    over its train config)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def point_key(
    base: dict[str, Any],
    action_names: Sequence[str],
    data_key: dict[str, Any],
    labels: int,
    steps: int,
    seed: int,
) -> dict[str, Any]:
    """What decides a point trained on the first ``labels`` frames of the data ``data_key``
    names, whose actions are ``action_names``: the data and the training config."""
    base = _fitted_to_action(base, list(action_names))
    recipe = _train_config(base, Path("RUN"), Path("DATA"), steps, labels, seed)
    return {"data": data_key, "train": recipe}


def trained_point(
    store: Store,
    base: dict[str, Any],
    data: Path,
    data_key: dict[str, Any],
    labels: int,
    steps: int,
    seed: int,
) -> Path:
    """The last checkpoint of the point trained on the first ``labels`` frames of ``data``
    (whose content ``data_key`` decides): reused when done, else trained from scratch."""
    names = read_manifest(data)["action"]["names"]
    base = _fitted_to_action(base, names)
    run = store.folder("points", point_key(base, names, data_key, labels, steps, seed))
    ckpt = run / "checkpoints" / "last.ckpt"
    if (run / "done").exists():
        print(f"point {run.name} ({labels} labels, seed {seed}): reused")
        return ckpt
    for stale in ("checkpoints", "logs"):  # a run cut short starts again
        shutil.rmtree(run / stale, ignore_errors=True)
    config = _train_config(base, run, data, steps, labels, seed)
    atomic_write_text(run / "train.yaml", yaml.safe_dump(config, sort_keys=False))
    fit(config)
    atomic_write_text(run / "done", f"{labels} labels, {steps} steps, seed {seed}\n")
    return ckpt


def frame_count(root: Path) -> tuple[int, int]:
    """``(episodes, frames)`` of the dataset at ``root``."""
    counts = read_manifest(root)["counts"]
    return int(counts["episodes"]), int(counts["frames"])


def demonstrations_key(scenario: Scenario, expert: str, noise: DartNoise | None) -> dict[str, Any]:
    """What decides the demonstrations of :func:`demonstrations` (the data of its points)."""
    return {
        "kind": "demonstrations",
        "scenario": scenario.to_dict(),
        "expert": expert,
        "noise": noise.to_dict() if noise else None,
    }


def demonstrations(
    store: Store,
    scenario: Scenario,
    expert: str,
    noise: DartNoise | None,
    frames: int,
    workers: int,
) -> tuple[Path, dict[str, Any]]:
    """The dataset of ``expert``'s demonstrations on the training seeds in order (executed
    actions perturbed by ``noise``), holding at least ``frames`` frames (grown when a recipe
    asks for more), and its key."""
    key = demonstrations_key(scenario, expert, noise)
    root = store.folder("data", key) / "dataset"
    agent = make_agent(expert, scenario)
    if not (root / "manifest.json").exists():
        seeds = scenario.train_seeds.first(math.ceil(frames / scenario.steps_per_episode))
        description = {"agent": expert, "expert": expert, "curve": True}
        DatasetWriter.create(root, scenario, description, seeds, {"noise": key["noise"]})
    while True:
        writer = DatasetWriter.open(root)
        if writer.missing_seeds():
            collect(writer, agent, mixer=noise, workers=workers, progress="collect")
        episodes, have = frame_count(root)
        if have >= frames:
            return root, key
        more = math.ceil((frames - have) / max(1.0, have / episodes)) + 1
        requested = len(writer.requested_seeds())
        writer.request_seeds(scenario.train_seeds.first(requested + more)[requested:])
        del writer  # releases the writer lock before the next open
