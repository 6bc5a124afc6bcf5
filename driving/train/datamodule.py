"""The demonstrations as a LightningDataModule: episode-wise split, batches, augmentation.

A batch is ``(frames, speed, labels)``: frames ``(B, C, H, W)`` uint8, the ego speed ``(B,)``
float32 [m/s] when each frame was observed (read by ``speed_input`` networks) and the expert's
labels ``(B, A)`` float32 (the BC targets).

The split into training and validation is BY EPISODE, never by frame (neighbouring frames of
one episode are near duplicates, so a frame split would measure memorisation): an episode is in
validation when a hash of ``(split_seed, episode seed)`` falls below
``val_fraction``, so the split of an episode never changes when episodes are added (DAgger) and
needs no stored state. At least one episode goes to each side when there are two or more.

The dataset folder is re-read by :meth:`DemoDataModule.reload`, called in ``setup()`` and by
every ``train_dataloader()``, so ``trainer.reload_dataloaders_every_n_epochs`` picks up frames
that DAgger appended between epochs.

Augmentation keeps the labels true: brightness (a random gain per image), Gaussian pixel noise,
photometric change (contrast about grey 128 and an offset) and Gaussian blur, both as the sensor
nuisances of :mod:`envs.nuisances` draw them (issue 20: a CNN trained for them, when asked for,
is the fair opponent of a pipeline that restores its frames), and an optional mirror across the
road's axis (rows flipped) that negates the steering label.
It runs on the training batches after they reach the device (``on_after_batch_transfer``), so it
costs the GPU, not the loader.

Braking is rare in expert driving (a small share of the frames; ``driving data info`` prints
the label statistics of a dataset), yet it is what keeps the car out of the one ahead.
``brake_weight`` draws training frames whose acceleration label is below ``brake_threshold``
that many times more often than the others (a ``WeightedRandomSampler``, with replacement, one
epoch = as many draws as training frames); under DDP Lightning splits the sampler's draws
between the processes.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from agents.checkpoint import policy_record
from agents.networks import NetworkConfig
from driving.dataset import DemoDataset
from envs.errors import UserError
from envs.scenarios import Scenario


def episode_hash(seed: int, split_seed: int = 0) -> float:
    """A stable pseudo-random number in [0, 1) for an episode seed (sha256, not ``hash()``)."""
    digest = hashlib.sha256(f"{split_seed}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_episodes(
    seeds: np.ndarray, val_fraction: float, split_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Episode seeds -> ``(train_seeds, val_seeds)``, sorted; see the module docstring."""
    seeds = np.asarray(sorted(int(s) for s in seeds), dtype=np.int64)
    if val_fraction <= 0 or len(seeds) < 2:
        return seeds, seeds[:0]
    h = np.array([episode_hash(s, split_seed) for s in seeds])
    val = h < val_fraction
    if not val.any():
        val[np.argmin(h)] = True
    if val.all():
        val[np.argmax(h)] = False
    return seeds[~val], seeds[val]


class FrameDataset(Dataset):
    """``(frame (C, H, W) uint8, speed () float32 [m/s], label (A,) float32)`` of chosen rows.

    ``__getitems__`` gathers a whole batch in one memory-map read (PyTorch's batched fetch).

    Args:
        data: the opened dataset.
        rows: ``(n,)`` row indices into it.
    """

    def __init__(self, data: DemoDataset, rows: np.ndarray) -> None:
        self.data = data
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, items: list[int]) -> list[tuple[torch.Tensor, ...]]:
        rows = self.rows[np.asarray(items, dtype=np.int64)]
        frames = torch.from_numpy(self.data.frames_at(rows))
        speed = torch.from_numpy(np.ascontiguousarray(self.data.speed[rows], dtype=np.float32))
        labels = torch.from_numpy(np.ascontiguousarray(self.data.expert_actions[rows]))
        return list(zip(frames, speed, labels, strict=True))


class DemoDataModule(pl.LightningDataModule):
    """Batches of a demonstration dataset for behaviour cloning.

    Args:
        root: the dataset folder (``driving collect --out``).
        val_fraction: share of episodes held out for open-loop validation.
        split_seed: salt of the episode hash that decides the split.
        batch_size: frames per batch.
        num_workers: DataLoader worker processes (0: load in the training process).
        pin_memory: pin host memory for faster copies to the GPU (None: when CUDA is present).
        brightness: training images get a random gain in ``[1 - b, 1 + b]`` (0: off).
        noise_std: std of Gaussian pixel noise on training images [gray levels] (0: off).
        mirror_prob: probability of mirroring a training image across the road's axis (rows
            flipped) with its steering label negated (0: off).
        contrast: training images get a contrast gain about grey 128 drawn in
            ``[1 - contrast, 1]`` (0: off).
        offset: training images get a grey-level offset drawn in ``[-offset, offset]`` (0: off).
        blur_std: training images are blurred by a Gaussian of std drawn in ``[0, blur_std]``
            [px] (0: off).
        max_frames: use at most this many training frames (the first in the canonical
            (seed, step) order), for data-size studies; None: all. The checkpoint's
            ``expert_labels`` counts the labels used (training and validation frames).
        brake_threshold: a training frame whose normalised acceleration label is below this
            counts as braking (-0.1 is -0.5 m/s²).
        brake_weight: how many times more often braking frames are drawn than the others
            (1: uniform shuffling; needs an ``accel`` action component otherwise).
    """

    def __init__(
        self,
        root: str,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        brightness: float = 0.0,
        noise_std: float = 0.0,
        mirror_prob: float = 0.0,
        contrast: float = 0.0,
        offset: float = 0.0,
        blur_std: float = 0.0,
        max_frames: int | None = None,
        brake_threshold: float = -0.1,
        brake_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if batch_size < 1 or num_workers < 0:
            raise UserError("batch_size must be >= 1 and num_workers >= 0")
        if not 0.0 <= brightness < 1.0 or noise_std < 0 or not 0.0 <= mirror_prob <= 1.0:
            raise UserError("need 0 <= brightness < 1, noise_std >= 0, 0 <= mirror_prob <= 1")
        if not 0.0 <= contrast < 1.0 or not 0.0 <= offset <= 128.0 or not 0.0 <= blur_std <= 5.0:
            raise UserError(
                f"need 0 <= contrast < 1, 0 <= offset <= 128 and 0 <= blur_std <= 5, got "
                f"{contrast}, {offset} and {blur_std}"
            )
        if not brake_weight > 0 or not -1.0 < brake_threshold < 1.0:
            raise UserError(
                f"need brake_weight > 0 and -1 < brake_threshold < 1, got {brake_weight} and "
                f"{brake_threshold}"
            )
        self.save_hyperparameters()
        self.root = Path(root)
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.brightness = brightness
        self.noise_std = noise_std
        self.mirror_prob = mirror_prob
        self.contrast = contrast
        self.offset = offset
        self.blur_std = blur_std
        self.max_frames = max_frames
        self.brake_threshold = brake_threshold
        self.brake_weight = brake_weight
        self.reload()
        if brake_weight != 1.0 and "accel" not in self.action_names:
            raise UserError(
                f"brake_weight needs an 'accel' action component; {self.root} has "
                f"{list(self.action_names)}"
            )

    def reload(self) -> None:
        """Re-read the dataset folder and recompute the split (frames appended are picked up)."""
        self.data = DemoDataset(self.root)
        if len(self.data) == 0:
            raise UserError(f"dataset {self.root} holds no frames yet")
        labelled = np.isfinite(self.data.expert_actions).all(axis=1)
        train_seeds, val_seeds = split_episodes(
            self.data.episodes(), self.val_fraction, self.split_seed
        )
        train = self.data.indices(train_seeds)
        if self.max_frames is not None:
            train = train[: self.max_frames]
        self.train_rows = train[labelled[train]]
        self.val_rows = self.data.indices(val_seeds)
        self.val_rows = self.val_rows[labelled[self.val_rows]]
        self.expert_labels = len(self.train_rows) + len(self.val_rows)  # the labels it uses
        self.train_seeds, self.val_seeds = train_seeds, val_seeds

    @property
    def scenario(self) -> Scenario:
        """The scenario the demonstrations were collected in."""
        return self.data.scenario

    @property
    def action_names(self) -> tuple[str, ...]:
        """Names of the action components, e.g. ``("accel", "steer")``."""
        return self.data.scenario.action.names

    @property
    def policy_spec(self) -> dict[str, Any]:
        """What the training module needs to build and describe its network (primitives).

        ``{"scenario", "observation", "action", "training_frames", "expert_labels",
        "dataset"}``: a :func:`agents.checkpoint.policy_record` without the network.
        """
        record = policy_record(
            self.scenario,
            NetworkConfig(),
            training_frames=len(self.train_rows),
            expert_labels=self.expert_labels,
            dataset=str(self.root),
        )
        record.pop("network")
        return record

    def setup(self, stage: str) -> None:
        self.reload()

    def braking(self, rows: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: whether each of ``rows`` has an acceleration label below the threshold."""
        accel = self.data.expert_actions[rows, self.action_names.index("accel")]
        return accel < self.brake_threshold

    def train_sampler(self) -> Sampler[int] | None:
        """The braking-weighted sampler over the training rows, or None (uniform shuffling)."""
        if self.brake_weight == 1.0:
            return None
        weights = np.where(self.braking(self.train_rows), self.brake_weight, 1.0)
        return WeightedRandomSampler(
            torch.from_numpy(weights), num_samples=len(self.train_rows), replacement=True
        )

    def _loader(self, rows: np.ndarray, shuffle: bool) -> DataLoader:
        sampler = self.train_sampler() if shuffle else None
        return DataLoader(
            FrameDataset(self.data, rows),
            batch_size=self.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            drop_last=shuffle and len(rows) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        self.reload()
        return self._loader(self.train_rows, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        if not len(self.val_rows):
            return []
        return self._loader(self.val_rows, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The validation episodes (the held-out test is closed loop: ``driving evaluate``)."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Every labelled frame of the dataset, in canonical order (episode seed, step)."""
        return self._loader(np.arange(len(self.data)), shuffle=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches on the device (:func:`augment`)."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return batch
        strengths = (self.brightness, self.noise_std, self.mirror_prob)
        if not any((*strengths, self.contrast, self.offset, self.blur_std)):
            return batch
        frames, speed, labels = batch
        frames, labels = augment(
            frames,
            labels,
            brightness=self.brightness,
            noise_std=self.noise_std,
            mirror_prob=self.mirror_prob,
            steer_index=self.action_names.index("steer"),
            contrast=self.contrast,
            offset=self.offset,
            blur_std=self.blur_std,
        )
        return frames, speed, labels


def augment(
    frames: torch.Tensor,
    labels: torch.Tensor,
    *,
    brightness: float,
    noise_std: float,
    mirror_prob: float,
    steer_index: int,
    contrast: float = 0.0,
    offset: float = 0.0,
    blur_std: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-preserving augmentation of a batch.

    Args:
        frames: ``(B, C, H, W)`` pixels in [0, 255] (uint8 or float).
        labels: ``(B, A)`` actions in [-1, 1].
        brightness: gain drawn uniformly in ``[1 - brightness, 1 + brightness]`` per image.
        noise_std: std of Gaussian pixel noise [gray levels].
        mirror_prob: probability of flipping an image's rows (the lateral axis) and negating
            its steering label (column ``steer_index``).
        contrast: gain about grey 128 drawn uniformly in ``[1 - contrast, 1]`` per image, and
        offset: grey levels added, drawn uniformly in ``[-offset, offset]`` per image: the
            ``brightness`` nuisance's change (:mod:`envs.nuisances`).
        blur_std: std of a Gaussian blur drawn uniformly in ``[0, blur_std]`` [px] per image
            (every channel of it alike, borders reflected as OpenCV's default): the ``blur``
            nuisance's.

    Returns:
        ``(frames, labels)``: float frames clamped to [0, 255] and the (possibly negated) labels.
    """
    x = frames.float()
    b = x.shape[0]
    if brightness:
        gain = 1.0 + brightness * (2.0 * torch.rand(b, 1, 1, 1, device=x.device) - 1.0)
        x = x * gain
    if blur_std:
        x = gaussian_blur(x, blur_std * torch.rand(b, device=x.device))
    if contrast or offset:
        gain = 1.0 - contrast * torch.rand(b, 1, 1, 1, device=x.device)
        shift = offset * (2.0 * torch.rand(b, 1, 1, 1, device=x.device) - 1.0)
        x = 128.0 + gain * (x - 128.0) + shift
    if noise_std:
        x = x + noise_std * torch.randn_like(x)
    if mirror_prob:
        flip = torch.rand(b, device=x.device) < mirror_prob
        x = torch.where(flip[:, None, None, None], x.flip(-2), x)
        labels = labels.clone()
        labels[flip, steer_index] = -labels[flip, steer_index]
    return x.clamp(0.0, 255.0), labels


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` float, each image blurred by a Gaussian of std ``sigma[i]`` [px]
    (``(B,)``; 0 leaves it as it is), separably, with borders reflected (OpenCV's default
    ``BORDER_REFLECT_101``, as :mod:`envs.nuisances` blurs)."""
    b, c, h, w = x.shape
    radius = max(1, math.ceil(3.0 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps[None] / sigma.to(x.dtype).clamp_min(1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(
        F.pad(y, (radius, radius, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=b * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=b * c
    )
    return y.reshape(b, c, h, w)
