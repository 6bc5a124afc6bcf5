"""Observation and action specifications: what the pixels look like and what an action means.

Both are small frozen dataclasses that are recorded in datasets and checkpoints, so that a
network trained on one spec is never silently driven with another.

Physical action ranges (highway-env ``ContinuousAction``, kinematic bicycle model):

- ``accel`` (normalised -1..1) maps linearly to -5..+5 m/s² longitudinal acceleration;
- ``steer`` (normalised -1..1) maps linearly to -π/4..+π/4 rad front-wheel angle
  (positive steers to the right in highway-env's y-down world frame, i.e. towards higher lane ids).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from envs.errors import UserError

ACCELERATION_RANGE_MPS2: tuple[float, float] = (-5.0, 5.0)
"""Physical acceleration range [m/s²] that normalised action -1..1 maps to."""
STEERING_RANGE_RAD: tuple[float, float] = (-math.pi / 4, math.pi / 4)
"""Physical front-wheel steering range [rad] that normalised action -1..1 maps to."""
GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)
"""RGB -> gray weights (ITU-R 601), as in highway-env's examples."""


@dataclass(frozen=True)
class ObservationSpec:
    """The pixel observation: a stack of bird's-eye frames centred on the ego car.

    Observations are ``uint8`` arrays of shape ``(channels, height, width)`` where
    ``channels = stack`` for ``kind="gray"`` and ``3 * stack`` for ``kind="rgb"`` (frames oldest
    first, RGB channels interleaved per frame). Rows run top to bottom of the image; the ego car
    drives towards +x, i.e. to the right of the image.

    Args:
        kind: ``"gray"`` (highway-env's ``GrayscaleObservation``) or ``"rgb"``.
        width: image width [px] (along the direction of travel).
        height: image height [px] (across the lanes).
        stack: number of consecutive frames stacked, oldest first.
        scaling: pixels per metre.
        centering: position of the ego car in the image, as fractions of (width, height).
    """

    kind: Literal["gray", "rgb"] = "gray"
    width: int = 160
    height: int = 64
    stack: int = 4
    scaling: float = 3.0
    centering: tuple[float, float] = (0.3, 0.5)

    def __post_init__(self) -> None:
        if self.kind not in ("gray", "rgb"):
            raise UserError(f"observation kind must be 'gray' or 'rgb', got {self.kind!r}")
        for name in ("width", "height", "stack"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UserError(f"observation {name} must be a positive integer, got {value!r}")
        if self.width < 16 or self.height < 16:
            raise UserError(
                f"observation size {self.width}x{self.height} is too small (at least 16x16 px)"
            )
        if not self.scaling > 0:
            raise UserError(f"observation scaling must be > 0 px/m, got {self.scaling!r}")
        object.__setattr__(self, "centering", tuple(float(c) for c in self.centering))

    @property
    def channels(self) -> int:
        """Number of image channels in one observation."""
        return self.stack * (3 if self.kind == "rgb" else 1)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Observation shape ``(channels, height, width)``."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the spec."""
        out = asdict(self)
        out["centering"] = list(self.centering)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationSpec:
        """Rebuild a spec from :meth:`to_dict` output (unknown keys are an error)."""
        return _from_dict(cls, data, "observation")


@dataclass(frozen=True)
class ActionSpec:
    """The action: normalised continuous controls in [-1, 1].

    Args:
        mode: ``"accel_steer"``: action ``[acceleration, steering]``; ``"steer"``: action
            ``[steering]`` only, with speed held at ``cruise_speed`` by a proportional
            longitudinal controller inside the environment.
        cruise_speed: target speed [m/s] of the built-in longitudinal controller (steer mode).
        speed_gain: gain [1/s] of that controller: accel = gain * (cruise_speed - speed).
    """

    mode: Literal["accel_steer", "steer"] = "accel_steer"
    cruise_speed: float = 25.0
    speed_gain: float = 0.5
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.mode not in ("accel_steer", "steer"):
            raise UserError(f"action mode must be 'accel_steer' or 'steer', got {self.mode!r}")
        names = ("accel", "steer") if self.mode == "accel_steer" else ("steer",)
        object.__setattr__(self, "names", names)

    @property
    def size(self) -> int:
        """Number of action components."""
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the spec."""
        return {"mode": self.mode, "cruise_speed": self.cruise_speed, "speed_gain": self.speed_gain}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpec:
        """Rebuild a spec from :meth:`to_dict` output (unknown keys are an error)."""
        return _from_dict(cls, {k: v for k, v in data.items() if k != "names"}, "action")


def _from_dict(cls: type, data: dict[str, Any], what: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"{what} spec must be a mapping, got {type(data).__name__}")
    valid = {f for f in cls.__dataclass_fields__ if cls.__dataclass_fields__[f].init}
    unknown = set(data) - valid
    if unknown:
        raise UserError(
            f"unknown {what} spec key(s) {sorted(unknown)}; valid keys: {sorted(valid)}"
        )
    try:
        return cls(**data)
    except TypeError as exc:
        raise UserError(f"bad {what} spec {data!r}: {exc}") from None
