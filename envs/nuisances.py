"""Sensor nuisances: a corrupted camera in front of every pixel agent.

A nuisance is selected by the scenario override ``nuisance``, one mapping or a list of them
applied in order::

    {"nuisance": {"kind": "blur", "severity": 2}}
    {"nuisance": [{"kind": "noise", "severity": 1}, {"kind": "blotches", "severity": 3}]}

:class:`~envs.driving_env.DrivingEnv` passes its clean observation through
:class:`SensorNuisances` at ``reset`` and at every ``step``, so every consumer (evaluate,
compare, watch, DAgger) and every agent sees the same corrupted pixels. Only the pixels change:
``info["scene"]`` and ``info["metrics"]`` (speed included) stay ground truth, so oracles are
unaffected by design.

The camera model: each captured frame is corrupted once, when it is captured, and then moves
through the frame stack unchanged (the stack is a first-in first-out queue of delivered frames,
as highway-env's is of clean ones). The empty frames that pad the stack at the start of an
episode were never captured and stay as they are. Every random draw comes from
``np.random.default_rng([salt, episode_seed, frame])`` where ``salt`` is the CRC-32 of the
kind's name and ``frame`` the index of the captured frame in the episode (0 at reset), or
``[salt, episode_seed]`` for what is fixed for the episode; so an episode is corrupted the same
way whatever agent drives it and however many workers run.

Severities, one table (:data:`SEVERITY`), level 1 (mild) to 3 (strong):

============== =========================================================== ====== ====== ======
kind           parameter                                                    1      2      3
============== =========================================================== ====== ====== ======
noise          std of additive Gaussian pixel noise [gray levels of 255]     6      12     24
blur           std of the Gaussian blur kernel [px]                          0.8    1.5    3.0
brightness     contrast gain about mid-gray 128 (x -> 128 + g (x - 128) + b)  0.8    0.6    0.4
               and offset b [gray levels], its sign drawn once per episode   ±20    ±40    ±60
dropped-frame  probability that a captured frame is lost and the previous    0.1    0.25   0.5
               one delivered again (never the first frame of an episode)
blotches       opaque dark blobs on the lens, fixed for the episode: count   2      4      8
               (radius 6-15 % of the image height each, soft edges)
============== =========================================================== ====== ====== ======

For one episode seed a stronger level changes the pixels at least as much: the draws are shared
across levels (the same unit noise scaled, the same loss draws thresholded, the first blobs of
the same list).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from envs.errors import UserError, unknown_choice

SEVERITIES: tuple[int, ...] = (1, 2, 3)
"""The valid severity levels, mild to strong."""

SEVERITY: dict[str, dict[str, tuple[float, float, float]]] = {
    "noise": {"std": (6.0, 12.0, 24.0)},
    "blur": {"sigma": (0.8, 1.5, 3.0)},
    "brightness": {"gain": (0.8, 0.6, 0.4), "offset": (20.0, 40.0, 60.0)},
    "dropped-frame": {"probability": (0.1, 0.25, 0.5)},
    "blotches": {"count": (2, 4, 8)},
}
"""Each kind's parameters by severity level (index ``severity - 1``); see the module table."""

KINDS: tuple[str, ...] = tuple(SEVERITY)
"""The nuisance kinds."""

BLOTCH_RADIUS = (0.06, 0.15)
"""Range of a blotch's radius, as fractions of the image height."""
BLOTCH_LEVEL = 30
"""Gray level [0..255] of a blotch (every colour channel alike)."""
BLOTCH_EDGE_SIGMA = 1.0
"""Std [px] of the blur that softens a blotch's edge."""


@dataclass(frozen=True)
class Nuisance:
    """One sensor nuisance.

    Args:
        kind: one of :data:`KINDS`.
        severity: a level of :data:`SEVERITIES` (1 mild .. 3 strong).
    """

    kind: str
    severity: int

    def __post_init__(self) -> None:
        if self.kind not in SEVERITY:
            raise unknown_choice("nuisance kind", str(self.kind), KINDS)
        if (
            isinstance(self.severity, bool)
            or not isinstance(self.severity, int)
            or self.severity not in SEVERITIES
        ):
            raise UserError(
                f"nuisance {self.kind!r}: severity must be an integer 1..3, got {self.severity!r}"
            )

    def parameter(self, name: str) -> float:
        """The value of parameter ``name`` of this kind at this severity (see :data:`SEVERITY`)."""
        return SEVERITY[self.kind][name][self.severity - 1]

    @property
    def salt(self) -> int:
        """The first word of every random key of this kind: CRC-32 of its name."""
        return zlib.crc32(self.kind.encode())

    def to_dict(self) -> dict[str, Any]:
        """The override mapping that selects this nuisance."""
        return {"kind": self.kind, "severity": self.severity}

    def __str__(self) -> str:
        return f"{self.kind} {self.severity}"


def parse_nuisances(value: Any) -> tuple[Nuisance, ...]:
    """The nuisances of a ``nuisance`` override: a mapping ``{"kind", "severity"}``, a list of
    them, or None (none).

    Raises:
        UserError: a wrong type, an unknown or repeated kind, a missing or extra key, a severity
            out of range (one line each).
    """
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not items:
        raise UserError("override 'nuisance' must not be an empty list")
    out: list[Nuisance] = []
    for item in items:
        if not isinstance(item, dict):
            raise UserError(
                'override \'nuisance\' must be a mapping like {"kind": "blur", "severity": 2}'
                f" or a list of them, got {item!r}"
            )
        if set(item) != {"kind", "severity"}:
            raise UserError(
                f"nuisance {item!r} must have exactly the keys 'kind' and 'severity'; "
                f"kinds: {', '.join(KINDS)}"
            )
        nuisance = Nuisance(item["kind"], item["severity"])
        if any(n.kind == nuisance.kind for n in out):
            raise UserError(f"nuisance kind {nuisance.kind!r} given twice")
        out.append(nuisance)
    return tuple(out)


def scenario_nuisances(overrides: dict[str, Any]) -> tuple[Nuisance, ...]:
    """The nuisances recorded in a scenario's ``overrides`` (empty when there are none)."""
    return parse_nuisances(overrides.get("nuisance"))


def refuse_in_training(overrides: dict[str, Any], allowed: bool, how_to_allow: str) -> None:
    """The one rule for every path into training data (collection, DAgger rounds, curves):
    a nuisance in ``overrides`` is a :class:`UserError` unless ``allowed`` (the user asked
    for it, as ``how_to_allow`` says), so corrupted pixels never reach training data unasked."""
    nuisances = scenario_nuisances(overrides)
    if nuisances and not allowed:
        listed = ", ".join(str(n) for n in nuisances)
        raise UserError(
            f"the overrides add a sensor nuisance ({listed}) to the training frames; {how_to_allow}"
        )


# -- the kinds, one captured frame at a time --------------------------------------------------


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _noise(frame: np.ndarray, n: Nuisance, seed: int, index: int) -> np.ndarray:
    unit = _rng(n.salt, seed, index).standard_normal(frame.shape, dtype=np.float32)
    return np.clip(np.rint(frame + n.parameter("std") * unit), 0, 255).astype(np.uint8)


def _blur(frame: np.ndarray, n: Nuisance, seed: int, index: int) -> np.ndarray:
    sigma = n.parameter("sigma")
    return np.stack([cv2.GaussianBlur(channel, (0, 0), sigma) for channel in frame])


def _brightness(frame: np.ndarray, n: Nuisance, seed: int, index: int) -> np.ndarray:
    sign = 1.0 if _rng(n.salt, seed).random() < 0.5 else -1.0
    gain, offset = n.parameter("gain"), sign * n.parameter("offset")
    out = 128.0 + gain * (frame.astype(np.float32) - 128.0) + offset
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def blotch_mask(seed: int, count: int, height: int, width: int) -> np.ndarray:
    """The opacity ``(height, width)`` float32 in [0, 1] of the lens blotches of an episode.

    The blobs are the first ``count`` of one list drawn from ``[salt("blotches"), seed]``, so a
    stronger severity adds blobs to the weaker one's. Read-only (cached).
    """
    rng = _rng(zlib.crc32(b"blotches"), seed)
    most = max(SEVERITY["blotches"]["count"])
    centres = rng.random((int(most), 2)) * (width, height)
    radii = rng.uniform(*BLOTCH_RADIUS, size=int(most)) * height
    mask = np.zeros((height, width), dtype=np.float32)
    for (x, y), r in list(zip(centres, radii, strict=True))[: int(count)]:
        cv2.circle(mask, (round(x), round(y)), max(1, round(r)), 1.0, -1, cv2.LINE_AA)
    mask = np.clip(cv2.GaussianBlur(mask, (0, 0), BLOTCH_EDGE_SIGMA), 0.0, 1.0)
    mask.setflags(write=False)
    return mask


def _blotches(frame: np.ndarray, n: Nuisance, seed: int, index: int) -> np.ndarray:
    alpha = blotch_mask(seed, int(n.parameter("count")), frame.shape[1], frame.shape[2])
    out = frame * (1.0 - alpha) + BLOTCH_LEVEL * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def frame_dropped(n: Nuisance, seed: int, index: int) -> bool:
    """Whether captured frame ``index`` of the episode ``seed`` is lost (``dropped-frame``)."""
    if index == 0:
        return False
    return bool(_rng(n.salt, seed, index).random() < n.parameter("probability"))


_PIXEL_KINDS = {"noise": _noise, "blur": _blur, "brightness": _brightness, "blotches": _blotches}
"""The kinds that change a frame's pixels: ``(frame (c, H, W) uint8, nuisance, seed, index) ->
frame`` of the same shape and dtype."""


class SensorNuisances:
    """Corrupts an episode's stream of stacked observations, one captured frame at a time.

    Args:
        nuisances: applied in this order to every captured frame (a ``dropped-frame`` stage
            delivers its own previous output again when the frame is lost).
        frame_channels: channels per frame in the observation (1 gray, 3 RGB).

    Call :meth:`reset` with the episode's first observation and seed, then :meth:`step` with
    every following observation; both take and return ``uint8`` ``(C, H, W)`` stacks with
    ``C = stack * frame_channels`` (oldest frame first).
    """

    def __init__(self, nuisances: Sequence[Nuisance], frame_channels: int) -> None:
        self.nuisances = tuple(nuisances)
        self.frame_channels = frame_channels
        self.seed = 0
        self.index = 0
        self._stack: np.ndarray | None = None
        self._last: list[np.ndarray | None] = [None] * len(self.nuisances)

    def reset(self, obs: np.ndarray, seed: int) -> np.ndarray:
        """The first corrupted observation of the episode ``seed`` (a non-negative integer)."""
        self.seed, self.index = int(seed), 0
        self._last = [None] * len(self.nuisances)
        stack = obs.copy()
        stack[-self.frame_channels :] = self._capture(obs[-self.frame_channels :])
        self._stack = stack
        return stack.copy()

    def step(self, obs: np.ndarray) -> np.ndarray:
        """The next corrupted observation: the previous one shifted by a frame, the newest
        clean frame of ``obs`` corrupted at its end."""
        if self._stack is None:
            raise RuntimeError("SensorNuisances.step before reset")
        self.index += 1
        c = self.frame_channels
        stack = np.roll(self._stack, -c, axis=0)
        stack[-c:] = self._capture(obs[-c:])
        self._stack = stack
        return stack.copy()

    def _capture(self, frame: np.ndarray) -> np.ndarray:
        """Pass one clean frame ``(c, H, W)`` through every stage; remember each output."""
        for i, n in enumerate(self.nuisances):
            if n.kind == "dropped-frame":
                previous = self._last[i]
                if previous is not None and frame_dropped(n, self.seed, self.index):
                    frame = previous
            else:
                frame = _PIXEL_KINDS[n.kind](frame, n, self.seed, self.index)
            self._last[i] = frame
        return frame
