"""Demonstration datasets: one folder, a JSON manifest and shards of plain ``.npy`` arrays.

Layout on disk (format version 2, written by this code)::

    DIR/
      writer.lock              empty; a writer holds an flock on it (one writer at a time)
      manifest.json            the commit point: scenario (config + overrides), observation and
                               action specs, agent/expert description, seeds (requested, done),
                               counts, package versions, one entry per shard (files + sha256),
                               one record per episode (provenance), creation time, extras
                               (e.g. the DART noise settings), the frame storage rule
      shards/
        shard-00000/           the decision steps of a few episodes, episodes sorted by seed
          images.npy           (m, H, W) uint8: every distinct image plane of the shard, once,
                               in episode order (``entry["images"]`` = m)
          stack.npy            (n, C) int32: the row of ``images.npy`` of each step's channel;
                               ``images[stack]`` is the (n, C, H, W) observation of each step
          actions.npy          (n, A) float32: the executed action (after noise/mixing, clipped)
          agent_actions.npy    (n, A) float32: the acting agent's own action
          expert_actions.npy   (n, A) float32: the expert's clean label
          applied.npy          (n, 2) float32: [accel, steer] sent to the simulator
          rewards.npy          (n,) float64: environment reward of the step
          episode.npy          (n,) int64: the episode seed of each step
          step.npy             (n,) int32: the decision index within its episode
          metrics.npy          (n, K) float64: step metrics of the state the decision was taken
                               in (``manifest["metric_names"]``; see envs.scene.step_metrics)

Version 1 (still read, and appended to in its own layout by :meth:`DatasetWriter.open`) stores
``frames.npy`` (n, C, H, W) uint8 instead of ``images.npy`` and ``stack.npy``. An observation
is a stack of frames (oldest first) that highway-env's ``GrayscaleObservation`` rolls by one
frame per decision, so consecutive observations share all but one frame: version 2 stores each
image plane once (:func:`pack_frames`), about 4x smaller for the default observation. The rule
is content-based, so it stays lossless whatever the stacking pattern: a plane equal byte for
byte to a plane of the previous step of the same episode reuses its row, every all-zero plane
(the stack starts from zeros at reset) shares one row per shard, anything else is a new row.
``manifest["storage"]`` records the rule.

Nothing is compressed or re-encoded: ``images[stack]`` is the environment's observations byte
for byte. ``driving data convert SRC DST`` (:func:`convert_dataset`) writes a verified version 2
copy of any dataset.

Writing (:class:`DatasetWriter`) is crash-safe: a shard is written under a temporary name,
flushed, then renamed into place (``os.replace``); only then is the manifest rewritten the same
way. The manifest alone decides what is in the dataset, so a collection killed at any moment
leaves every shard it listed readable, and :meth:`DatasetWriter.open` removes its own
temporary leftovers (names made from :data:`~driving.files.TMP_PREFIX`) before collecting the
missing seeds; anything else it does not list is left alone (with a warning).

Nothing outside the folder is read, probed or deleted because of the manifest: shard names must
match the writer's rule (``shard-NNNNN``), and a shards folder, shard or file that resolves
outside the folder (a symlink) is refused (:func:`shard_path`, a :class:`UnsafePath` error).

Reading (:class:`DemoDataset`) is canonical: steps are ordered by (episode seed, step) whatever
the shard order, so the same seeds give byte-identical arrays however many workers collected
them, however often the collection was interrupted and resumed, and in either format version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import numpy as np

from driving.files import (
    TMP_PREFIX,
    SymlinkLock,
    atomic_write_text,
    check_output_location,
    file_sha256,
    fsync_dir,
    hold_lock,
    size_on_disk,
)
from driving.versions import package_versions
from envs.errors import RunError, UserError
from envs.scenarios import Scenario

if TYPE_CHECKING:
    from driving.rollout import Episode

FORMAT = "driving-demonstrations"
VERSION = 2
"""The format version new datasets are written in."""
VERSIONS = (1, 2)
"""The format versions this code reads."""
MANIFEST = "manifest.json"
SHARDS = "shards"
LOCK = "writer.lock"
SHARD_NAME = re.compile(r"shard-[0-9]{5,}")
"""The writer's shard names: ``shard-`` and the shard's index, at least 5 digits."""
TMP_SHARD = re.compile(re.escape(TMP_PREFIX) + r"shard-[0-9]{5,}-[0-9]+")
"""The temporary names shards are written under (``.tmp-shard-00003-PID``)."""
TMP_MANIFEST = re.compile(re.escape(TMP_PREFIX) + r"manifest\.[A-Za-z0-9_]+\.json")
"""The temporary names :func:`driving.files.replacing` gives a manifest being written."""
STORAGE = {
    "frames": "images[stack]",
    "images": "(m, H, W) uint8: each distinct image plane of a shard once, in episode order",
    "stack": "(n, C) int32: the images row of each step's channel",
    "reuse": "a plane byte-equal to a plane of the previous step of its episode reuses its row",
    "padding": (
        "all-zero planes share one row per shard (highway-env's GrayscaleObservation starts "
        "each episode from an all-zero stack and rolls one frame in per observation, so the "
        "reset observation is all-zero planes, C - 1 of them for gray frames, then the first "
        "frame)"
    ),
}
"""``manifest["storage"]`` of a version 2 dataset: how the observations are stored."""


class UnsafePath(UserError):
    """A manifest or folder that would make a reader leave the dataset folder (a bad shard
    name, a symlink leading out). Raised, never reported as a mere problem, by every reader."""


@dataclass(frozen=True)
class ArrayField:
    """One array of a shard: file ``{name}.npy`` of shape ``(entry[rows], *tail)``.

    ``tail`` names its trailing dimensions: ``"obs"`` (C, H, W), ``"image"`` (H, W),
    ``"channels"`` (C,), ``"action"`` (A,), ``"applied"`` (2,), ``"metrics"`` (K,) or nothing
    (a scalar per row). ``rows`` is the key of the shard's manifest entry that counts its rows:
    ``"frames"`` (one per step) or ``"images"`` (one per stored image plane).
    """

    name: str
    dtype: str
    tail: str = ""
    rows: str = "frames"


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
"""The per-step arrays of a dataset (each a :class:`DemoDataset` attribute), in file order; the
files of a version 1 shard."""

IMAGES = ArrayField("images", "uint8", "image", rows="images")
STACK = ArrayField("stack", "int32", "channels")
LAYOUTS: dict[int, tuple[ArrayField, ...]] = {1: FIELDS, 2: (IMAGES, STACK, *FIELDS[1:])}
"""The files of a shard, by format version."""


def _tail_shape(tail: str, manifest: dict[str, Any]) -> tuple[int, ...]:
    obs = tuple(manifest["observation"]["shape"])
    shapes = {
        "": (),
        "obs": obs,
        "image": obs[1:],
        "channels": obs[:1],
        "action": (len(manifest["action"]["names"]),),
        "applied": (2,),
        "metrics": (len(manifest["metric_names"]),),
    }
    return shapes[tail]


def pack_frames(frames: np.ndarray, episode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Store each distinct image plane of ``frames`` once (the version 2 layout).

    Args:
        frames: ``(n, C, H, W)`` uint8 observations of one shard, episodes contiguous and in
            step order (a memory map is read sequentially).
        episode: ``(n,)`` the episode seed of each row.

    Returns:
        ``images`` ``(m, H, W)`` uint8 and ``stack`` ``(n, C)`` int32 with
        ``images[stack] == frames`` byte for byte: a plane equal to a plane of the previous
        row of the same episode reuses its row (the frame stack rolls by one frame per step,
        so usually channel ``c + 1`` of the previous row), all-zero planes share one row, any
        other plane is a new row.
    """
    n, channels = frames.shape[:2]
    stack = np.empty((n, channels), dtype=np.int32)
    images: list[np.ndarray] = []
    zero: int | None = None
    previous: list[int] = []  # the rows of the previous step of the same episode
    for t in range(n):
        if t and episode[t] != episode[t - 1]:
            previous = []
        current = []
        planes = np.asarray(frames[t])
        for c in range(channels):
            plane = planes[c]
            # channel c + 1 first (one roll of the stack), then the others
            order = previous[c + 1 :] + previous[: c + 1]
            row = next((r for r in order if np.array_equal(images[r], plane)), None)
            if row is None and not plane.any():
                if zero is None:
                    zero = len(images)
                    images.append(np.zeros_like(plane))
                row = zero
            if row is None:
                row = len(images)
                images.append(plane.copy())
            current.append(row)
        stack[t] = current
        previous = current
    shape = (0, *frames.shape[2:])
    packed = np.stack(images) if images else np.empty(shape, dtype=np.uint8)
    return np.ascontiguousarray(packed, dtype=np.uint8), stack


def _inside(root: Path, path: Path, what: str) -> Path:
    """``path`` if it resolves inside dataset ``root`` (symlinks followed), else refused."""
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        raise UnsafePath(f"dataset {root}: {what} {path} leads outside the folder (to {real})")
    return path


def shard_path(root: str | Path, name: Any, file: str | None = None) -> Path:
    """The folder of shard ``name`` of dataset ``root`` (or its ``file``), checked to be safe:
    ``name`` follows the writer's rule (:data:`SHARD_NAME`), and neither ``shards/``, the shard
    nor the file resolves outside ``root``. The one check every reader makes.

    Raises:
        UnsafePath: naming the manifest, shard or path at fault.
    """
    root = Path(root)
    if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
        raise UnsafePath(
            f"dataset manifest {root / MANIFEST} lists shard {name!r}; "
            "shard names are shard-NNNNN (refused)"
        )
    _inside(root, root / SHARDS, "shards folder")
    folder = _inside(root, root / SHARDS / name, "shard")
    return folder if file is None else _inside(root, folder / file, "shard file")


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


def _lock(root: Path) -> IO[bytes]:
    """Take the writer lock of dataset ``root`` (a :class:`UserError` if another holds it, or
    if the lock file is a symlink: it is never followed)."""
    try:
        return hold_lock(root / LOCK, f"dataset {root} is being written by another process")
    except SymlinkLock:
        raise UnsafePath(f"dataset {root}: {LOCK} is a symlink (refused)") from None


def _check_entries(root: Path, manifest: dict[str, Any]) -> None:
    """Check the shard entries of ``manifest`` (names, counts, file names) and that nothing
    they name leads out of ``root`` (see :func:`shard_path`)."""
    path = root / MANIFEST
    shards = manifest["shards"]
    if not isinstance(shards, list) or not all(isinstance(e, dict) for e in shards):
        raise UserError(f"dataset manifest {path}: shards is not a list of entries")
    _inside(root, root / SHARDS, "shards folder")
    names = [e.get("name") for e in shards]
    for name in names:
        shard_path(root, name)
    if len(set(names)) != len(names):
        raise UserError(f"dataset manifest {path} lists a shard twice")
    files = {f.name for f in LAYOUTS[manifest["version"]]}
    counts = {f.rows for f in LAYOUTS[manifest["version"]]}
    for entry in shards:
        sha = entry.get("sha256")
        if not isinstance(sha, dict) or set(sha) != files:
            raise UserError(
                f"dataset manifest {path}: shard {entry['name']} does not list exactly the "
                f"files {sorted(files)}"
            )
        for key in counts:
            value = entry.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserError(
                    f"dataset manifest {path}: shard {entry['name']} {key} is {value!r}"
                )


def read_manifest(root: str | Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of dataset ``root``, checked for the keys readers need and
    for shard entries that stay inside the folder.

    Raises:
        UserError: naming the folder or file and what is wrong with it (an
            :class:`UnsafePath` for a path leading out of the folder).
    """
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise UserError(f"dataset {root}: no such folder")
    if not path.is_file():
        raise UserError(f"dataset {root}: no {MANIFEST} (not a dataset folder)")
    _inside(root, path, "manifest")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"dataset manifest {path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"dataset manifest {path} is not a {FORMAT} manifest")
    if manifest.get("version") not in VERSIONS:
        raise UserError(
            f"dataset manifest {path} has format version {manifest.get('version')!r}; "
            f"this code reads versions {', '.join(map(str, VERSIONS))}"
        )
    required = ("scenario", "observation", "action", "metric_names", "seeds", "counts")
    missing = [k for k in (*required, "shards", "episodes") if k not in manifest]
    if missing:
        raise UserError(f"dataset manifest {path} lacks {', '.join(missing)}")
    _check_entries(root, manifest)
    return manifest


class DemoDataset:
    """A demonstration dataset opened for reading (the read side of :mod:`driving.dataset`).

    ``DemoDataset(root)`` validates the manifest and the header (dtype and shape) of every shard
    file; a missing or broken manifest, a missing or truncated shard file, or a wrong dtype or
    shape is a :class:`UserError` naming the file and the problem. Checksums are not recomputed
    here (that reads every byte): ``driving data verify`` does it.

    Steps are in canonical order: by episode seed, then step. All per-step arrays except the
    frames are small and read into memory at once (a version 2 shard's ``stack.npy`` too).
    Frames stay in per-shard memory maps (``images.npy``, or a version 1 ``frames.npy``); two
    ways to read them:

    - :attr:`frames`: the whole ``(N, C, H, W)`` uint8 array in memory, built on first access
      with one sequential read per shard's ``images.npy`` (per episode of a version 1 shard)
      straight into place. 50,000 frames of 4x64x160 take 2 GB of RAM; the time is the disk's
      or page cache's (``driving bench collect`` measures it).
    - :meth:`frames_at`: ``frames[indices]`` gathered from the memory maps without building
      the whole array; memory stays at the size of the batch and the OS page cache is shared
      between processes (DataLoader workers, DDP ranks).

    Pickling (DataLoader workers under ``spawn``) sends only the folder and reopens the memory
    maps on the other side.

    Attributes:
        root: the dataset folder.
        manifest: the parsed ``manifest.json``.
        version: its format version (1 or 2).
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
    version: int
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
        self.version = int(self.manifest["version"])
        self.scenario = Scenario.from_record(self.manifest["scenario"])
        self.metric_names = list(self.manifest["metric_names"])
        # per shard: the frames (v1) or images (v2) memory map, and the stack (v2) or None
        self._images: list[np.ndarray] = []
        self._stacks: list[np.ndarray | None] = []
        columns: dict[str, list[np.ndarray]] = {f.name: [] for f in FIELDS if f.name != "frames"}
        shard_ids: list[np.ndarray] = []
        for k, entry in enumerate(self.manifest["shards"]):
            arrays = _open_shard(self.root, entry, self.manifest)
            if "frames" in arrays:
                self._images.append(arrays.pop("frames"))
                self._stacks.append(None)
            else:
                self._images.append(arrays.pop("images"))
                self._stacks.append(arrays.pop("stack"))
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
        """Per-shard ``(n_k, C, H, W)`` uint8 frames in shard row order, in manifest order:
        read-only memory maps of a version 1 dataset, arrays rebuilt in memory (``images[stack]``)
        of a version 2 one."""
        return [
            images if stack is None else images[stack]
            for images, stack in zip(self._images, self._stacks, strict=True)
        ]

    @functools.cached_property
    def frames(self) -> np.ndarray:
        """``(N, C, H, W)`` uint8 observations in canonical order (see the class docstring)."""
        shape = (len(self), *_tail_shape("obs", self.manifest))
        out = np.empty(shape, dtype=np.uint8)
        if len(self) == 0:
            return out
        if self.version >= 2:  # read each shard's images at once, then place the stacks
            for k, planes in enumerate(self._stacks):
                assert planes is not None
                where = np.flatnonzero(self._shard_of == k)
                out[where] = _read_whole(self._images[k])[planes[self._row_of[where]]]
            return out
        # v1: read runs of consecutive rows of one shard (whole episodes) straight into place
        # with readinto: copying from the memory maps page-faults and was ~15x slower here.
        breaks = np.flatnonzero((np.diff(self._shard_of) != 0) | (np.diff(self._row_of) != 1))
        starts = np.concatenate([[0], breaks + 1]).tolist()
        stops = np.concatenate([breaks + 1, [len(self)]]).tolist()
        row_bytes = out[0].nbytes
        with contextlib.ExitStack() as stack:
            handles: dict[int, BinaryIO] = {}
            for a, b in zip(starts, stops, strict=True):
                k = int(self._shard_of[a])
                if k not in handles:
                    handles[k] = stack.enter_context(open(self._images[k].filename, "rb"))
                fh = handles[k]
                fh.seek(self._images[k].offset + int(self._row_of[a]) * row_bytes)
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
            sorted_rows = rows[where][sort]
            stack = self._stacks[k]
            planes = sorted_rows if stack is None else stack[sorted_rows]
            out[where[sort]] = self._images[k][planes]
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


def _read_whole(array: np.memmap) -> np.ndarray:
    """The memory-mapped ``.npy`` ``array`` read into memory with one sequential read."""
    out = np.empty(array.shape, dtype=array.dtype)
    with open(array.filename, "rb") as fh:
        fh.seek(array.offset)
        if fh.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise UserError(f"dataset shard file {fh.name} is truncated")
    return out


def _open_shard(root: Path, entry: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """Memory-map every file of one shard, checking dtype and shape against the manifest (and
    that a version 2 ``stack.npy``, read into memory, indexes rows of ``images.npy``)."""
    out: dict[str, Any] = {}
    for f in LAYOUTS[manifest["version"]]:
        path = shard_path(root, entry["name"], f"{f.name}.npy")
        if not path.is_file():
            raise UserError(f"dataset shard file {path} is missing")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise UserError(
                f"dataset shard file {path} is unreadable or truncated: {exc}"
            ) from None
        expected = (entry[f.rows], *_tail_shape(f.tail, manifest))
        if array.dtype != np.dtype(f.dtype) or array.shape != expected:
            raise UserError(
                f"dataset shard file {path} holds {array.dtype}{list(array.shape)}, "
                f"expected {f.dtype}{list(expected)}"
            )
        out[f.name] = array
    if "stack" in out:
        stack = out["stack"] = np.asarray(out["stack"])
        if stack.size and (stack.min() < 0 or stack.max() >= entry["images"]):
            path = shard_path(root, entry["name"], "stack.npy")
            raise UserError(f"dataset shard file {path} indexes rows outside images.npy")
    return out


def _frames_of(arrays: dict[str, Any]) -> np.ndarray:
    """The ``(n, C, H, W)`` frames of an opened shard: its ``frames.npy`` memory map (v1) or
    ``images[stack]`` (v2)."""
    if "frames" in arrays:
        return arrays["frames"]
    return _read_whole(arrays["images"])[arrays["stack"]]


def shard_problems(root: str | Path, entry: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """What is wrong with one shard: missing, truncated or altered files (checksums), wrong
    dtype or shape, or episodes that disagree with the manifest. Empty when it is intact.

    Raises:
        UnsafePath: the shard or one of its files leads outside the folder.
    """
    root = Path(root)
    problems: list[str] = []
    for f in LAYOUTS[manifest["version"]]:
        path = shard_path(root, entry["name"], f"{f.name}.npy")
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif file_sha256(path) != entry["sha256"].get(f.name):
            problems.append(f"{path}: checksum mismatch (truncated or altered)")
    if problems:
        return problems
    try:
        arrays = _open_shard(root, entry, manifest)
    except UnsafePath:
        raise
    except UserError as exc:
        return [str(exc)]
    seeds, counts = np.unique(np.asarray(arrays["episode"]), return_counts=True)
    listed = {e["seed"]: e["steps"] for e in manifest["episodes"] if e["shard"] == entry["name"]}
    if dict(zip(seeds.tolist(), counts.tolist(), strict=True)) != listed:
        problems.append(
            f"{shard_path(root, entry['name'])}: episodes and steps disagree with the manifest"
        )
    return problems


def verify_dataset(root: str | Path) -> list[str]:
    """Every problem of dataset ``root`` (manifest, counts, each shard's files and checksums),
    one line each naming the file or shard; empty when the dataset is intact.

    Raises:
        UnsafePath: the manifest or a shard leads outside the folder (nothing is read there).
    """
    root = Path(root)
    try:
        manifest = read_manifest(root)
    except UnsafePath:
        raise
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
    file and an empty ``shards/`` folder, not a symlink, left by a writer killed while creating
    it count as empty).

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
        if path.name == LOCK and not path.is_symlink():
            continue
        if path.name == SHARDS and not path.is_symlink() and not any(path.iterdir()):
            continue
        raise UserError(f"output {root} is a non-empty folder that is not a dataset")


def _write_shard(
    folder: Path, arrays: dict[str, np.ndarray], layout: Sequence[ArrayField]
) -> tuple[dict[str, str], int]:
    """Write the ``.npy`` files of ``layout`` into the new temporary ``folder`` and flush them;
    return their sha256 by field and their total size. A failure removes ``folder``."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    try:
        for f in layout:
            _write_array(folder / f"{f.name}.npy", arrays[f.name])
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-written stays behind
        raise
    fsync_dir(folder)
    sha = {f.name: file_sha256(folder / f"{f.name}.npy") for f in layout}
    size = sum((folder / f"{f.name}.npy").stat().st_size for f in layout)
    return sha, size


class DatasetWriter:
    """The write side: create a dataset, then add shards of finished episodes.

    Use :meth:`create` for a new dataset or :meth:`open` to resume or append to one; do not call
    the constructor directly. One writer per folder at a time: a second one (in any process) is
    refused while the first is alive (an advisory ``flock`` on ``DIR/writer.lock``).

    Each :meth:`add` writes ONE shard atomically (temporary folder, files flushed, then
    ``os.replace``) and then rewrites the manifest atomically, so a reader or a crash sees either
    the dataset before the shard or after it. Shards are written in the dataset's format version
    (a version 1 dataset reopened to append stays version 1; ``driving data convert`` upgrades).
    """

    def __init__(self, root: Path, manifest: dict[str, Any], lock: IO[bytes]) -> None:
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
        version: int = VERSION,
    ) -> DatasetWriter:
        """Start a new dataset in ``root`` (absent or an empty folder).

        Args:
            root: the dataset folder.
            scenario: the scenario collected in (recorded with its overrides).
            agent_description: JSON-ready description of the acting agent and the expert.
            seeds: the episode seeds the dataset is to hold; fixed from now on.
            extra: JSON-ready settings to record (e.g. noise), kept in ``manifest["extra"]``.
            version: the format version to write (1 only to make old-layout test data).

        Raises:
            UserError: ``root`` is a file, a non-empty folder, or already a dataset.
        """
        root = Path(root)
        check_new_root(root)
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be distinct and not empty")
        if version not in VERSIONS:
            raise ValueError(f"format version {version} is not one of {VERSIONS}")
        (root / SHARDS).mkdir(parents=True, exist_ok=True)
        _inside(root, root / SHARDS, "shards folder")
        lock = _lock(root)
        if (root / MANIFEST).exists():
            raise UserError(f"output {root} is already a dataset; resume it or pick another")
        obs, action = scenario.observation, scenario.action
        now = _now()
        manifest = {
            "format": FORMAT,
            "version": version,
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
            **_layout_record(version),
            "shards": [],
            "episodes": [],
        }
        _write_json_atomic(root / MANIFEST, manifest)
        return cls(root, manifest, lock)

    @classmethod
    def open(cls, root: str | Path) -> DatasetWriter:
        """Reopen dataset ``root`` to add shards, removing the temporary shards and manifests an
        interrupted writer left (names of :data:`TMP_SHARD` and :data:`TMP_MANIFEST`, not
        symlinks). Anything else in ``shards/`` that the manifest does not list (a shard
        renamed into place by a writer killed before it committed the manifest, a stranger's
        file) is left alone, with a warning naming it.

        Raises:
            UserError: not a dataset, another writer holds it, or ``shards/`` (or a listed
                shard) leads outside the folder (an :class:`UnsafePath`).
        """
        root = Path(root)
        read_manifest(root)
        lock = _lock(root)
        manifest = read_manifest(root)  # as the last writer left it
        listed = {e["name"] for e in manifest["shards"]}
        shards = root / SHARDS
        shards.mkdir(exist_ok=True)
        unknown = []
        for path in sorted(shards.iterdir()):
            if path.name in listed:
                continue
            if TMP_SHARD.fullmatch(path.name) and not path.is_symlink():
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            else:
                unknown.append(path.name)
        for path in root.iterdir():
            if TMP_MANIFEST.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                path.unlink()
        if unknown:
            warnings.warn(
                f"dataset {shards} holds {len(unknown)} entr{'y' if len(unknown) == 1 else 'ies'} "
                f"its manifest does not list, left alone: {', '.join(unknown[:5])}"
                + (", ..." if len(unknown) > 5 else ""),
                stacklevel=2,
            )
        return cls(root, manifest, lock)

    @property
    def scenario(self) -> Scenario:
        """The scenario of the dataset."""
        return Scenario.from_record(self.manifest["scenario"])

    @property
    def version(self) -> int:
        """The format version the dataset's shards are written in."""
        return int(self.manifest["version"])

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

    def _next_name(self) -> str:
        """A shard name of the writer's rule that is neither listed nor taken on disk (an
        unlisted shard of a killed writer is skipped, not deleted)."""
        listed = {e["name"] for e in self.manifest["shards"]}
        index = len(listed)
        while True:
            name = f"shard-{index:05d}"
            path = self.root / SHARDS / name
            if name not in listed and not path.exists() and not path.is_symlink():
                return name
            index += 1

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
        name = self._next_name()
        arrays = self._arrays(episodes)
        shards = self.root / SHARDS
        tmp = shards / f"{TMP_PREFIX}{name}-{os.getpid()}"
        sha, size = _write_shard(tmp, arrays, LAYOUTS[self.version])
        final = shards / name
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
                **({"images": len(arrays["images"])} if "images" in arrays else {}),
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
        """The files of one shard of ``episodes`` (sorted by seed), in the dataset's layout."""
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
        arrays = {
            f.name: np.ascontiguousarray(np.concatenate(parts[f.name]), dtype=f.dtype)
            for f in FIELDS
        }
        if self.version >= 2:
            arrays["images"], arrays["stack"] = pack_frames(arrays.pop("frames"), arrays["episode"])
        return arrays


def _layout_record(version: int) -> dict[str, Any]:
    """The manifest keys describing a version's shard files (and frame storage rule)."""
    record: dict[str, Any] = {
        "fields": {f.name: {"dtype": f.dtype, "tail": f.tail} for f in LAYOUTS[version]}
    }
    if version >= 2:
        record["storage"] = dict(STORAGE)
    return record


def _read_lock(root: Path) -> contextlib.AbstractContextManager[Any]:
    """A shared flock on ``root``'s writer lock while reading it (refused while a writer is
    alive); nothing is created when there is no lock file, and a symlink is never followed."""
    path = root / LOCK
    if not path.exists() and not path.is_symlink():
        return contextlib.nullcontext()
    try:
        return hold_lock(path, f"dataset {root} is being written by another process", shared=True)
    except SymlinkLock:
        raise UnsafePath(f"dataset {root}: {LOCK} is a symlink (refused)") from None


def convert_dataset(src: str | Path, dst: str | Path) -> str:
    """``data convert``: write a version 2 copy of dataset ``src`` (either version) to ``dst``,
    verify it, and return the one line to print. ``src`` is only read.

    The copy keeps the shards (names, episodes, order) and the manifest's records; each shard's
    frames are packed by :func:`pack_frames` and the other files are copied byte for byte. It
    is built in a temporary sibling of ``dst`` and renamed into place only after it verifies:
    every checksum and count (:func:`verify_dataset`), and every frame stack equal to the
    source's. ``manifest["converted_from"]`` records the source.

    Raises:
        UserError: ``src`` is not an intact dataset, is being written, or ``dst`` exists and is
            not an empty folder, or lies inside ``src``.
    """
    src, dst = Path(src), Path(dst)
    manifest = read_manifest(src)
    if dst.exists() or dst.is_symlink():
        if not dst.is_dir() or dst.is_symlink():
            raise UserError(f"output {dst} exists and is not a folder")
        if any(dst.iterdir()):
            raise UserError(f"output {dst} exists and is not empty")
    if dst.resolve().is_relative_to(src.resolve()):
        raise UserError(f"output {dst} is inside the source dataset {src}")
    if not dst.parent.is_dir():
        raise UserError(f"output {dst}: no such folder {dst.parent}")
    with _read_lock(src):
        problems = verify_dataset(src)
        if problems:
            raise UserError(
                f"source {src} fails verification ({len(problems)} problem(s), first: "
                f"{problems[0]}); see driving data verify"
            )
        tmp = dst.with_name(f"{TMP_PREFIX}{dst.name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _write_converted(src, manifest, tmp)
            os.replace(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    fsync_dir(dst.parent)
    frames = manifest["counts"]["frames"]
    per_frame = (
        f"; {size_on_disk(src) / frames / 1024:.1f} -> {size_on_disk(dst) / frames / 1024:.1f} "
        "KiB per frame"
        if frames
        else ""
    )
    return (
        f"{dst}: version {VERSION} copy of {src} (version {manifest['version']}): "
        f"{len(manifest['shards'])} shards, {manifest['counts']['episodes']} episodes, "
        f"{frames} frames{per_frame}; checksums match and every frame stack equals the source"
    )


def _write_converted(src: Path, manifest: dict[str, Any], root: Path) -> None:
    """Write the version 2 copy of ``src`` (manifest ``manifest``) into the new folder
    ``root``, then check it against the source (a :class:`RunError` if it differs)."""
    (root / SHARDS).mkdir(parents=True)
    layout = LAYOUTS[VERSION]
    out = json.loads(json.dumps(manifest))
    out.update(version=VERSION, updated=_now(), **_layout_record(VERSION))
    out["converted_from"] = {"path": str(src.resolve()), "version": manifest["version"]}
    out["shards"] = []
    for entry in manifest["shards"]:
        arrays = _open_shard(src, entry, manifest)
        files = {f.name: np.asarray(arrays[f.name]) for f in FIELDS[1:]}
        files["images"], files["stack"] = pack_frames(_frames_of(arrays), files["episode"])
        folder = root / SHARDS / f"{TMP_PREFIX}{entry['name']}-{os.getpid()}"
        sha, size = _write_shard(folder, files, layout)
        os.replace(folder, root / SHARDS / entry["name"])
        out["shards"].append(
            {**entry, "images": len(files["images"]), "bytes": size, "sha256": sha}
        )
    fsync_dir(root / SHARDS)
    _write_json_atomic(root / MANIFEST, out)
    problems = verify_dataset(root)
    for entry in out["shards"] if not problems else []:
        source = _frames_of(_open_shard(src, entry, manifest))
        if not np.array_equal(_frames_of(_open_shard(root, entry, out)), source):
            problems.append(f"{entry['name']}: frame stacks differ from the source")
    if problems:
        raise RunError(f"converted copy {root} failed verification (removed): {problems[0]}")


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
