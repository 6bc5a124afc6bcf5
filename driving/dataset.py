"""Demonstration datasets: one folder, a JSON manifest and shards of plain ``.npy`` arrays.

Layout on disk::

    DIR/
      writer.lock              empty; a writer holds an flock on it (one writer at a time)
      manifest.json            the commit point: scenario (config + overrides), observation and
                               action specs, agent/expert description, seeds (requested, done),
                               counts, package versions, one entry per shard (files + sha256),
                               one record per episode (provenance), creation time, extras
                               (e.g. the DART noise settings)
      shards/
        shard-00000/           the decision steps of a few episodes, episodes sorted by seed
          frames.npy           (n, C, H, W) uint8: the observation each decision was taken on
          actions.npy          (n, A) float32: the executed action (after noise/mixing, clipped)
          agent_actions.npy    (n, A) float32: the acting agent's own action
          expert_actions.npy   (n, A) float32: the expert's clean label
          applied.npy          (n, 2) float32: [accel, steer] sent to the simulator
          rewards.npy          (n,) float64: environment reward of the step
          episode.npy          (n,) int64: the episode seed of each step
          step.npy             (n,) int32: the decision index within its episode
          metrics.npy          (n, K) float64: step metrics of the state the decision was taken
                               in (``manifest["metric_names"]``; see envs.scene.step_metrics)

Nothing is compressed or re-encoded: frames are the environment's observations byte for byte.

Writing (:class:`DatasetWriter`) is crash-safe: a shard is written under a temporary name,
flushed, then renamed into place (``os.replace``); only then is the manifest rewritten the same
way. The manifest alone decides what is in the dataset, so a collection killed at any moment
leaves every shard it listed readable, and :meth:`DatasetWriter.open` removes leftovers
(temporary or unlisted shards) before collecting the missing seeds.

Reading (:class:`DemoDataset`) is canonical: steps are ordered by (episode seed, step) whatever
the shard order, so the same seeds give byte-identical arrays however many workers collected
them and however often the collection was interrupted and resumed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import functools
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import numpy as np

from driving.files import (
    TMP_PREFIX,
    atomic_write_text,
    check_output_location,
    file_sha256,
    fsync_dir,
    size_on_disk,
)
from driving.versions import package_versions
from envs.errors import UserError
from envs.scenarios import Scenario

if TYPE_CHECKING:
    from driving.rollout import Episode

FORMAT = "driving-demonstrations"
VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
LOCK = "writer.lock"


@dataclass(frozen=True)
class ArrayField:
    """One per-step array of a shard: file ``{name}.npy`` of shape ``(n, *tail)``.

    ``tail`` names its trailing dimensions: ``"obs"`` (C, H, W), ``"action"`` (A,),
    ``"applied"`` (2,), ``"metrics"`` (K,) or nothing (a scalar per step).
    """

    name: str
    dtype: str
    tail: str = ""


FIELDS: tuple[ArrayField, ...] = (
    ArrayField("frames", "uint8", "obs"),
    ArrayField("actions", "float32", "action"),
    ArrayField("agent_actions", "float32", "action"),
    ArrayField("expert_actions", "float32", "action"),
    ArrayField("applied", "float32", "applied"),
    ArrayField("rewards", "float64"),
    ArrayField("episode", "int64"),
    ArrayField("step", "int32"),
    ArrayField("metrics", "float64", "metrics"),
)
"""The arrays of every shard, in file order."""


def _tail_shape(tail: str, manifest: dict[str, Any]) -> tuple[int, ...]:
    shapes = {
        "": (),
        "obs": tuple(manifest["observation"]["shape"]),
        "action": (len(manifest["action"]["names"]),),
        "applied": (2,),
        "metrics": (len(manifest["metric_names"]),),
    }
    return shapes[tail]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as ``.npy`` at ``path`` and flush it to disk.

    numpy reports a short write (a full disk) as an ``OSError`` without an errno; it is raised
    again as ``ENOSPC`` naming the file, so callers can tell a full disk from other failures.
    """
    try:
        with open(path, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno is None and shutil.disk_usage(path.parent).free < array.nbytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def _lock(root: Path) -> IO[str]:
    """Take the writer lock of dataset ``root`` (a :class:`UserError` if another holds it)."""
    handle = open(root / LOCK, "a")  # noqa: SIM115 (held for the writer's lifetime)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"dataset {root} is being written by another process") from None
    return handle


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of dataset ``root``, checked for the keys readers need.

    Raises:
        UserError: naming the folder or file and what is wrong with it.
    """
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise UserError(f"dataset {root}: no such folder")
    if not path.is_file():
        raise UserError(f"dataset {root}: no {MANIFEST} (not a dataset folder)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"dataset manifest {path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"dataset manifest {path} is not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise UserError(
            f"dataset manifest {path} has format version {manifest.get('version')!r}; "
            f"this code reads version {VERSION}"
        )
    required = ("scenario", "observation", "action", "metric_names", "seeds", "counts")
    missing = [k for k in (*required, "shards", "episodes") if k not in manifest]
    if missing:
        raise UserError(f"dataset manifest {path} lacks {', '.join(missing)}")
    return manifest


class DemoDataset:
    """A demonstration dataset opened for reading (the read side of :mod:`driving.dataset`).

    ``DemoDataset(root)`` validates the manifest and the header (dtype and shape) of every shard
    file; a missing or broken manifest, a missing or truncated shard file, or a wrong dtype or
    shape is a :class:`UserError` naming the file and the problem. Checksums are not recomputed
    here (that reads every byte): ``driving data verify`` does it.

    Steps are in canonical order: by episode seed, then step. All per-step arrays except the
    frames are small and read into memory at once. Frames stay in per-shard memory maps
    (:attr:`shard_frames`); two ways to read them:

    - :attr:`frames`: the whole ``(N, C, H, W)`` uint8 array in memory, built on first access
      with one sequential read per episode straight into place. 50,000 frames of 4x64x160 take
      2 GB of RAM; the time is the disk's or page cache's (``driving bench collect`` measures
      it).
    - :meth:`frames_at`: ``frames[indices]`` gathered from the memory maps without building
      the whole array; memory stays at the size of the batch and the OS page cache is shared
      between processes (DataLoader workers, DDP ranks).

    Pickling (DataLoader workers under ``spawn``) sends only the folder and reopens the memory
    maps on the other side.

    Attributes:
        root: the dataset folder.
        manifest: the parsed ``manifest.json``.
        scenario: the scenario the data was collected in, overrides included.
        expert_actions: ``(N, A)`` float32, the expert's clean label of each frame.
        actions: ``(N, A)`` float32, the action executed (differs from the label under DART
            noise or DAgger mixing).
        agent_actions: ``(N, A)`` float32, the acting agent's own action.
        applied: ``(N, 2)`` float32 ``[accel, steer]`` sent to the simulator (physical units of
            the normalised action; steer-only scenarios include the cruise controller).
        rewards: ``(N,)`` float64 environment rewards.
        episode: ``(N,)`` int64, the episode seed of each frame.
        step: ``(N,)`` int32, the decision index of each frame within its episode.
        metrics: ``(N, K)`` float64 step metrics of the state each decision was taken in,
            columns named by :attr:`metric_names`.
        speed: ``(N,)`` float32 ego speed [m/s] when the frame was observed.
        lane_offset: ``(N,)`` float32 lateral offset from the lane centre [m] (positive right).
    """

    root: Path
    manifest: dict[str, Any]
    scenario: Scenario
    expert_actions: np.ndarray
    actions: np.ndarray
    agent_actions: np.ndarray
    applied: np.ndarray
    rewards: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    metrics: np.ndarray
    metric_names: list[str]
    speed: np.ndarray
    lane_offset: np.ndarray

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._load()

    def _load(self) -> None:
        self.manifest = read_manifest(self.root)
        self.scenario = Scenario.from_record(self.manifest["scenario"])
        self.metric_names = list(self.manifest["metric_names"])
        self._shard_frames: list[np.ndarray] = []
        columns: dict[str, list[np.ndarray]] = {f.name: [] for f in FIELDS if f.name != "frames"}
        shard_ids: list[np.ndarray] = []
        for k, entry in enumerate(self.manifest["shards"]):
            arrays = _open_shard(self.root, entry, self.manifest)
            self._shard_frames.append(arrays.pop("frames"))
            for name, array in arrays.items():
                columns[name].append(np.asarray(array))
            shard_ids.append(np.full(entry["frames"], k, dtype=np.int32))
        tails = {f.name: _tail_shape(f.tail, self.manifest) for f in FIELDS}
        merged = {
            name: (
                np.concatenate(parts)
                if parts
                else np.empty((0, *tails[name]), dtype=_field(name).dtype)
            )
            for name, parts in columns.items()
        }
        shard_of = np.concatenate(shard_ids) if shard_ids else np.empty(0, dtype=np.int32)
        row_of = (
            np.concatenate([np.arange(e["frames"]) for e in self.manifest["shards"]])
            if shard_ids
            else np.empty(0, dtype=np.int64)
        )
        order = np.lexsort((merged["step"], merged["episode"]))
        if len(order) and np.any(
            (np.diff(merged["episode"][order]) == 0) & (np.diff(merged["step"][order]) == 0)
        ):
            raise UserError(f"dataset {self.root}: a (seed, step) appears twice across shards")
        self._order = order
        self._shard_of = shard_of[order]
        self._row_of = row_of[order].astype(np.int64)
        for name, array in merged.items():
            setattr(self, name, array[order])
        self.speed = self._metric("speed")
        self.lane_offset = self._metric("lane_offset")

    def _metric(self, name: str) -> np.ndarray:
        if name not in self.metric_names:
            return np.full(len(self.episode), np.nan, dtype=np.float32)
        return self.metrics[:, self.metric_names.index(name)].astype(np.float32)

    def __len__(self) -> int:
        return len(self.episode)

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root = state["root"]
        self._load()

    @property
    def shard_frames(self) -> list[np.ndarray]:
        """Per-shard ``(n_k, C, H, W)`` uint8 read-only memory maps, in manifest order."""
        return list(self._shard_frames)

    @functools.cached_property
    def frames(self) -> np.ndarray:
        """``(N, C, H, W)`` uint8 observations in canonical order (see the class docstring)."""
        shape = (len(self), *_tail_shape("obs", self.manifest))
        out = np.empty(shape, dtype=np.uint8)
        if len(self) == 0:
            return out
        # Read runs of consecutive rows of one shard (whole episodes) straight into place with
        # readinto: copying from the memory maps page-faults and was ~15x slower here.
        breaks = np.flatnonzero((np.diff(self._shard_of) != 0) | (np.diff(self._row_of) != 1))
        starts = np.concatenate([[0], breaks + 1]).tolist()
        stops = np.concatenate([breaks + 1, [len(self)]]).tolist()
        row_bytes = out[0].nbytes
        with contextlib.ExitStack() as stack:
            handles: dict[int, BinaryIO] = {}
            for a, b in zip(starts, stops, strict=True):
                k = int(self._shard_of[a])
                if k not in handles:
                    handles[k] = stack.enter_context(open(self._shard_frames[k].filename, "rb"))
                fh = handles[k]
                fh.seek(self._shard_frames[k].offset + int(self._row_of[a]) * row_bytes)
                if fh.readinto(memoryview(out[a:b]).cast("B")) != (b - a) * row_bytes:
                    raise UserError(f"dataset shard file {fh.name} is truncated")
        return out

    def frames_at(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """``frames[indices]`` as a new ``(len(indices), C, H, W)`` uint8 array, read from the
        per-shard memory maps (rows of each shard read in ascending order)."""
        idx = np.asarray(indices, dtype=np.int64)
        if "frames" in self.__dict__:
            return self.frames[idx]
        out = np.empty((len(idx), *_tail_shape("obs", self.manifest)), dtype=np.uint8)
        shards, rows = self._shard_of[idx], self._row_of[idx]
        for k in np.unique(shards):
            where = np.flatnonzero(shards == k)
            sort = np.argsort(rows[where], kind="stable")
            out[where[sort]] = self._shard_frames[k][rows[where][sort]]
        return out

    def episodes(self) -> np.ndarray:
        """The sorted unique episode seeds ``(E,)`` int64."""
        return np.unique(self.episode)

    def indices(self, seeds: Iterable[int]) -> np.ndarray:
        """Frame indices ``(n,)`` int64 of the episodes ``seeds``, in canonical order.

        Seeds that are not in the dataset contribute nothing.
        """
        wanted = np.asarray(sorted({int(s) for s in seeds}), dtype=np.int64)
        return np.flatnonzero(np.isin(self.episode, wanted))

    def provenance(self) -> list[dict[str, Any]]:
        """One dict per episode, by seed: ``seed``, ``steps``, ``shard``, ``terminated``,
        ``truncated``, ``return`` plus whatever the writer was given for its shard (e.g. DAgger
        round, beta, policy checkpoint)."""
        return sorted((dict(e) for e in self.manifest["episodes"]), key=lambda e: e["seed"])

    @property
    def complete(self) -> bool:
        """Whether every requested seed has been collected."""
        seeds = self.manifest["seeds"]
        return set(seeds["done"]) >= set(seeds["requested"])


def _field(name: str) -> ArrayField:
    return next(f for f in FIELDS if f.name == name)


def _open_shard(root: Path, entry: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Memory-map every file of one shard, checking dtype and shape against the manifest."""
    folder = root / SHARDS / entry["name"]
    out: dict[str, Any] = {}
    for f in FIELDS:
        path = folder / f"{f.name}.npy"
        if not path.is_file():
            raise UserError(f"dataset shard file {path} is missing")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(
                f"dataset shard file {path} is unreadable or truncated: {exc}"
            ) from None
        expected = (entry["frames"], *_tail_shape(f.tail, manifest))
        if array.dtype != np.dtype(f.dtype) or array.shape != expected:
            raise UserError(
                f"dataset shard file {path} holds {array.dtype}{list(array.shape)}, "
                f"expected {f.dtype}{list(expected)}"
            )
        out[f.name] = array
    return out


def shard_problems(root: str | Path, entry: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """What is wrong with one shard: missing, truncated or altered files (checksums), wrong
    dtype or shape, or episodes that disagree with the manifest. Empty when it is intact."""
    root = Path(root)
    problems: list[str] = []
    folder = root / SHARDS / entry["name"]
    for f in FIELDS:
        path = folder / f"{f.name}.npy"
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif file_sha256(path) != entry["sha256"].get(f.name):
            problems.append(f"{path}: checksum mismatch (truncated or altered)")
    if problems:
        return problems
    try:
        arrays = _open_shard(root, entry, manifest)
    except UserError as exc:
        return [str(exc)]
    seeds, counts = np.unique(np.asarray(arrays["episode"]), return_counts=True)
    listed = {e["seed"]: e["steps"] for e in manifest["episodes"] if e["shard"] == entry["name"]}
    if dict(zip(seeds.tolist(), counts.tolist(), strict=True)) != listed:
        problems.append(f"{folder}: episodes and steps disagree with the manifest")
    return problems


def verify_dataset(root: str | Path) -> list[str]:
    """Every problem of dataset ``root`` (manifest, counts, each shard's files and checksums),
    one line each naming the file or shard; empty when the dataset is intact."""
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except UserError as exc:
        return [str(exc)]
    problems: list[str] = []
    for entry in manifest["shards"]:
        problems += shard_problems(root, entry, manifest)
    frames = sum(e["frames"] for e in manifest["shards"])
    episodes = len(manifest["episodes"])
    counts = manifest["counts"]
    if counts.get("frames") != frames or counts.get("episodes") != episodes:
        problems.append(
            f"{root / MANIFEST}: counts {counts} disagree with the shards "
            f"({episodes} episodes, {frames} frames)"
        )
    if sorted(e["seed"] for e in manifest["episodes"]) != sorted(manifest["seeds"]["done"]):
        problems.append(f"{root / MANIFEST}: done seeds disagree with the episode records")
    return problems


def check_new_root(root: Path) -> None:
    """Check that a new dataset may be created at ``root``: absent, or an empty folder (a lock
    file and an empty ``shards/`` left by a writer killed while creating it count as empty).

    Raises:
        UserError: ``root`` is a file, already a dataset, or a folder holding anything else.
    """
    check_output_location(root, "output")
    if not root.exists():
        return
    if not root.is_dir():
        raise UserError(f"output {root} exists and is not a folder")
    if (root / MANIFEST).exists():
        raise UserError(f"output {root} is already a dataset; resume it or pick another")
    for path in root.iterdir():
        if path.name == LOCK or (path.name == SHARDS and path.is_dir() and not any(path.iterdir())):
            continue
        raise UserError(f"output {root} is a non-empty folder that is not a dataset")


class DatasetWriter:
    """The write side: create a dataset, then add shards of finished episodes.

    Use :meth:`create` for a new dataset or :meth:`open` to resume or append to one; do not call
    the constructor directly. One writer per folder at a time: a second one (in any process) is
    refused while the first is alive (an advisory ``flock`` on ``DIR/writer.lock``).

    Each :meth:`add` writes ONE shard atomically (temporary folder, files flushed, then
    ``os.replace``) and then rewrites the manifest atomically, so a reader or a crash sees either
    the dataset before the shard or after it.
    """

    def __init__(self, root: Path, manifest: dict[str, Any], lock: IO[str]) -> None:
        self.root = root
        self.manifest = manifest
        self._lock = lock  # held (flock) while this writer lives; released if the process dies

    @classmethod
    def create(
        cls,
        root: str | Path,
        scenario: Scenario,
        agent_description: dict[str, Any],
        seeds: Sequence[int],
        extra: dict[str, Any] | None = None,
    ) -> DatasetWriter:
        """Start a new dataset in ``root`` (absent or an empty folder).

        Args:
            root: the dataset folder.
            scenario: the scenario collected in (recorded with its overrides).
            agent_description: JSON-ready description of the acting agent and the expert.
            seeds: the episode seeds the dataset is to hold; fixed from now on.
            extra: JSON-ready settings to record (e.g. noise), kept in ``manifest["extra"]``.

        Raises:
            UserError: ``root`` is a file, a non-empty folder, or already a dataset.
        """
        root = Path(root)
        check_new_root(root)
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct and not empty")
        (root / SHARDS).mkdir(parents=True, exist_ok=True)
        lock = _lock(root)
        if (root / MANIFEST).exists():
            raise UserError(f"output {root} is already a dataset; resume it or pick another")
        obs, action = scenario.observation, scenario.action
        now = _now()
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": now,
            "updated": now,
            "scenario": scenario.to_dict(),
            "observation": {**obs.to_dict(), "shape": list(obs.shape), "dtype": "uint8"},
            "action": {**action.to_dict(), "names": list(action.names), "dtype": "float32"},
            "metric_names": [],  # the step metrics' keys, set by the first shard
            "agent": json.loads(json.dumps(agent_description)),
            "extra": json.loads(json.dumps(extra or {})),
            "versions": package_versions(),
            "seeds": {"requested": seeds, "done": []},
            "counts": {"episodes": 0, "frames": 0},
            "fields": {f.name: {"dtype": f.dtype, "tail": f.tail} for f in FIELDS},
            "shards": [],
            "episodes": [],
        }
        _write_json_atomic(root / MANIFEST, manifest)
        return cls(root, manifest, lock)

    @classmethod
    def open(cls, root: str | Path) -> DatasetWriter:
        """Reopen dataset ``root`` to add shards, removing leftovers of an interrupted writer
        (temporary files and shards the manifest does not list)."""
        root = Path(root)
        read_manifest(root)
        lock = _lock(root)
        manifest = read_manifest(root)  # as the last writer left it
        listed = {e["name"] for e in manifest["shards"]}
        shards = root / SHARDS
        shards.mkdir(exist_ok=True)
        for path in shards.iterdir():
            if path.name not in listed:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        for leftover in root.glob(f"{TMP_PREFIX}{MANIFEST}*"):
            leftover.unlink()
        return cls(root, manifest, lock)

    @property
    def scenario(self) -> Scenario:
        """The scenario of the dataset."""
        return Scenario.from_record(self.manifest["scenario"])

    def requested_seeds(self) -> list[int]:
        """The seeds the dataset is to hold (fixed at creation, extended only by
        :meth:`request_seeds`), in request order."""
        return list(self.manifest["seeds"]["requested"])

    def done_seeds(self) -> set[int]:
        """The seeds whose episodes are written."""
        return set(self.manifest["seeds"]["done"])

    def missing_seeds(self) -> list[int]:
        """Requested seeds not written yet, in request order."""
        done = self.done_seeds()
        return [s for s in self.requested_seeds() if s not in done]

    def request_seeds(self, seeds: Sequence[int]) -> None:
        """Append ``seeds`` to the requested seeds (e.g. a DAgger round adding episodes to the
        dataset), committing the manifest. They must be new; checking that they are training
        seeds is the caller's job (see :func:`driving.seeds.training_seeds`)."""
        seeds = [int(s) for s in seeds]
        clash = set(seeds) & set(self.requested_seeds())
        if clash or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds already requested or repeated: {sorted(clash)[:5]}")
        manifest = json.loads(json.dumps(self.manifest))
        manifest["seeds"]["requested"] += seeds
        manifest["updated"] = _now()
        _write_json_atomic(self.root / MANIFEST, manifest)
        self.manifest = manifest

    def add(self, episodes: Sequence[Episode], provenance: dict[str, Any] | None = None) -> str:
        """Write ``episodes`` as one new shard and commit it to the manifest; return its name.

        Args:
            episodes: finished episodes with frames and expert labels, of requested seeds not
                written yet (any order: they are stored sorted by seed).
            provenance: JSON-ready facts recorded in each of their episode records (e.g.
                ``{"dagger_round": 2, "beta": 0.5, "policy": "runs/x.ckpt"}``).
        """
        if not episodes:
            raise ValueError("add() needs at least one episode")
        episodes = sorted(episodes, key=lambda e: e.seed)
        self._check(episodes, provenance or {})
        index = len(self.manifest["shards"])
        name = f"shard-{index:05d}"
        arrays = self._arrays(episodes)
        shards = self.root / SHARDS
        tmp = shards / f"{TMP_PREFIX}{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            for f in FIELDS:
                _write_array(tmp / f"{f.name}.npy", arrays[f.name])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays behind
            raise
        fsync_dir(tmp)
        sha = {f.name: file_sha256(tmp / f"{f.name}.npy") for f in FIELDS}
        size = sum((tmp / f"{f.name}.npy").stat().st_size for f in FIELDS)
        final = shards / name
        if final.exists():  # an unlisted leftover of a killed writer
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(shards)
        frames = int(sum(e.steps for e in episodes))
        manifest = json.loads(json.dumps(self.manifest))
        manifest["metric_names"] = list(episodes[0].metrics)
        manifest["shards"].append(
            {
                "name": name,
                "episodes": len(episodes),
                "frames": frames,
                "bytes": size,
                "seeds": [e.seed for e in episodes],
                "sha256": sha,
                "written": _now(),
            }
        )
        for e in episodes:
            manifest["episodes"].append(
                {
                    "seed": e.seed,
                    "steps": e.steps,
                    "shard": name,
                    "terminated": e.terminated,
                    "truncated": e.truncated,
                    "return": float(np.sum(e.rewards)),
                    **json.loads(json.dumps(provenance or {})),
                }
            )
        manifest["seeds"]["done"] += [e.seed for e in episodes]
        manifest["counts"]["episodes"] += len(episodes)
        manifest["counts"]["frames"] += frames
        manifest["updated"] = _now()
        _write_json_atomic(self.root / MANIFEST, manifest)
        self.manifest = manifest
        return name

    def _check(self, episodes: Sequence[Episode], provenance: dict[str, Any]) -> None:
        reserved = {"seed", "steps", "shard", "terminated", "truncated", "return"}
        if reserved & set(provenance):
            raise ValueError(f"provenance keys {sorted(reserved & set(provenance))} are reserved")
        requested, done = set(self.requested_seeds()), self.done_seeds()
        obs_shape = tuple(self.manifest["observation"]["shape"])
        for e in episodes:
            if e.seed not in requested or e.seed in done:
                raise ValueError(f"seed {e.seed} is not a requested seed still to be written")
            if e.frames is None or e.expert_actions is None:
                raise ValueError(f"episode {e.seed} lacks frames or expert labels")
            if e.frames.shape[1:] != obs_shape or e.frames.dtype != np.uint8:
                raise ValueError(f"episode {e.seed} frames {e.frames.shape} are not {obs_shape}")
        names = self.manifest["metric_names"] or list(episodes[0].metrics)
        if any(list(e.metrics) != names for e in episodes):
            raise ValueError(f"episodes must all carry the step metrics {names}")
        if len({e.seed for e in episodes}) != len(episodes):
            raise ValueError("episodes of one shard must have distinct seeds")

    def _arrays(self, episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
        names = list(episodes[0].metrics)
        parts: dict[str, list[np.ndarray]] = {f.name: [] for f in FIELDS}
        for e in episodes:
            parts["frames"].append(e.frames)
            parts["actions"].append(e.actions)
            parts["agent_actions"].append(e.agent_actions)
            parts["expert_actions"].append(e.expert_actions)
            parts["applied"].append(e.applied)
            parts["rewards"].append(e.rewards)
            parts["episode"].append(np.full(e.steps, e.seed))
            parts["step"].append(np.arange(e.steps))
            # metrics[t] is the state decision t was taken in; the last entry (after the final
            # decision) has no frame and is dropped.
            parts["metrics"].append(np.stack([e.metrics[k][: e.steps] for k in names], axis=1))
        return {
            f.name: np.ascontiguousarray(np.concatenate(parts[f.name]), dtype=f.dtype)
            for f in FIELDS
        }


def verify_report(root: Path) -> tuple[bool, str]:
    """``data verify``: whether dataset ``root`` is intact, and the lines to print (each problem,
    naming its shard file, or a one-line OK with the counts)."""
    if not (root / MANIFEST).is_file():
        raise UserError(f"{root} is not a dataset (no {MANIFEST})")
    problems = verify_dataset(root)
    if problems:
        lines = [f"BAD {problem}" for problem in problems]
        return False, "\n".join([*lines, f"{root}: {len(problems)} problem(s)"])
    manifest = read_manifest(root)
    counts = manifest["counts"]
    requested = len(manifest["seeds"]["requested"])
    incomplete = (
        f"; INCOMPLETE: {requested - counts['episodes']} of {requested} episodes missing"
        if counts["episodes"] < requested
        else ""
    )
    return True, (
        f"{root}: OK ({len(manifest['shards'])} shards, {counts['episodes']} episodes, "
        f"{counts['frames']} frames; checksums match{incomplete})"
    )


def _action_stats(name: str, values: np.ndarray) -> str:
    if len(values) == 0:
        return f"  {name:<22} (no frames)"
    return (
        f"  {name:<22} mean {values.mean():+.3f}  std {values.std():.3f}  "
        f"min {values.min():+.3f}  max {values.max():+.3f}"
    )


def describe_dataset(root: Path) -> str:
    """``data info``: scenario, agent and expert, noise, seeds, episodes, frames, size on disk
    and statistics of the expert labels and executed actions."""
    data = DemoDataset(root)
    m: dict[str, Any] = data.manifest
    collect = m["extra"].get("collect") or {}
    noise = collect.get("noise")
    seeds = m["seeds"]
    prov = data.provenance()
    lines = [
        f"dataset      {root}",
        f"scenario     {data.scenario.name}  overrides {data.scenario.overrides or '{}'}",
        f"observation  {m['observation']['kind']} {m['observation']['shape']} uint8",
        f"actions      {m['action']['names']} (normalised [-1, 1])",
        f"agent        {m['agent'].get('agent')}   expert {m['agent'].get('expert')}",
        f"noise        {noise['std'] if noise else 'none'}",
        f"episodes     {m['counts']['episodes']} of {len(seeds['requested'])} requested"
        + ("" if data.complete else "  (INCOMPLETE: driving collect --resume)"),
        f"frames       {m['counts']['frames']}"
        + (f"  ({len(data) / max(len(prov), 1):.1f} per episode)" if prov else ""),
        f"ended        {sum(p['terminated'] for p in prov)} terminated (crash / off-road), "
        f"{sum(p['truncated'] for p in prov)} reached the time limit",
        f"shards       {len(m['shards'])}",
        f"size         {size_on_disk(root) / 2**20:.1f} MiB on disk",
        f"created      {m['created']}  (updated {m['updated']})",
        f"versions     {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        "action statistics:",
    ]
    for k, name in enumerate(m["action"]["names"]):
        lines.append(_action_stats(f"expert {name}", data.expert_actions[:, k]))
        lines.append(_action_stats(f"executed {name}", data.actions[:, k]))
    lines.append(_action_stats("speed [m/s]", data.speed))
    return "\n".join(lines)
