"""An RGB variant of highway-env's ``GrayscaleObservation``.

Same viewer, same framing, no gray conversion. Selected by the observation config::

    "observation": {
        "type": "RGBStackObservation",
        "observation_shape": (160, 64),   # (width, height) [px]
        "stack_size": 4,
        "scaling": 3.0,
    }

Frames come out as ``(stack, width, height, 3)`` uint8, like the gray ones are
``(stack, width, height)``; :class:`envs.driving_env.DrivingEnv` reorders both.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from highway_env.envs.common.observation import GrayscaleObservation


class RGBStackObservation(GrayscaleObservation):
    """A stack of RGB bird's-eye frames centred on the observer vehicle."""

    def __init__(self, env, observation_shape: tuple[int, int], stack_size: int, **kwargs) -> None:
        super().__init__(env, observation_shape, stack_size, weights=[1, 1, 1], **kwargs)
        self.shape = (stack_size, *self.observation_shape, 3)
        self.obs = np.zeros(self.shape, dtype=np.uint8)

    def space(self) -> spaces.Space:
        return spaces.Box(shape=self.shape, low=0, high=255, dtype=np.uint8)

    def observe(self) -> np.ndarray:
        self.viewer.observer_vehicle = self.observer_vehicle
        self.viewer.display()
        frame = np.moveaxis(self.viewer.get_image(), 0, 1)  # (W, H, 3)
        self.obs = np.roll(self.obs, -1, axis=0)
        self.obs[-1] = frame
        return self.obs
