"""The gymnasium environment every agent drives: pixels in, continuous controls out.

:class:`DrivingEnv` builds a highway-env environment from a :class:`~envs.scenarios.Scenario` and
reshapes its interface into the project's contract:

- observation: ``uint8`` ``(channels, height, width)`` stack of bird's-eye frames (see
  :class:`~envs.spec.ObservationSpec`), passed through the scenario's sensor nuisances when its
  overrides ask for them (:mod:`envs.nuisances`; the pixels only, never ``info``);
- action: ``float32`` normalised controls in [-1, 1] (see :class:`~envs.spec.ActionSpec`);
- ``info`` at reset and at every step: ``"scene"`` (:class:`~envs.scene.Scene`, ground truth for
  oracles only), ``"metrics"`` (dict of floats, see :func:`~envs.scene.step_metrics`),
  ``"idm_action"`` (highway-env's IDM/MOBIL action in the ego car's place, ``(2,)``),
  ``"applied_action"`` (the ``[accel, steer]`` actually sent to the simulator, ``(2,)``),
  ``"reward_terms"`` (highway-env's reward components) and ``"time"`` [s];
- ``terminated`` for a crash (or the scenario's own end, e.g. leaving the racetrack or passing
  the merge; on a scenario with a :class:`~envs.scenarios.Route`, reaching the route's goal or
  leaving the road), ``truncated`` when the scenario's duration is reached. A timeout is not a
  crash.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from highway_env.envs.common.action import action_factory
from highway_env.road.lane import CircularLane

from envs.errors import UserError
from envs.idm_hint import IdmShadow
from envs.nuisances import SensorNuisances, scenario_nuisances
from envs.rgb_observation import RGBStackObservation
from envs.scenarios import Scenario, get_scenario, highway_env_entry_class
from envs.scene import extract_scene, step_metrics
from envs.spec import ACCELERATION_RANGE_MPS2

FAST_SIM_DEFAULT = True
"""Whether :class:`DrivingEnv` uses the accelerated simulation when ``fast`` is not given."""


class _PixelObservationMixin:
    """Lets a highway-env env class use :class:`RGBStackObservation` from its config."""

    def define_spaces(self) -> None:
        obs_config = dict(self.config["observation"])
        if obs_config.get("type") != "RGBStackObservation":
            super().define_spaces()
            return
        obs_config.pop("type")
        self.observation_type = RGBStackObservation(self, **obs_config)
        self.action_type = action_factory(self, self.config["action"])
        self.observation_space = self.observation_type.space()
        self.action_space = self.action_type.space()


class _ContinuousLaneChangeRewardMixin:
    """merge-v0 and roundabout-v0 score lane changes by testing ``action in [0, 2]`` (the
    discrete lane-change actions), which is ambiguous for a continuous action array; with
    continuous actions there is no discrete lane-change action, so that reward term is 0."""

    def _rewards(self, action: Any) -> dict[str, float]:
        return super()._rewards(None)


_DISCRETE_REWARD_ENVS = frozenset({"merge-v0", "roundabout-v0", "roundabout-generic-v1"})

ROUNDABOUT_RING_SPEED_LIMIT_MPS = 10.0
"""Speed limit [m/s] on the roundabout's ring. highway-env leaves every lane at its default 20
m/s, which on the 20-24 m radius ring means 17-20 m/s² of lateral acceleration; 10 m/s (36
km/h, a usual urban roundabout limit) is 4.2 m/s² on the outer ring. The limit is what the
driving score's progress and speed-limit terms measure against, and highway-env's IDM traffic
keeps to it too (``IDMVehicle.acceleration`` clips its target speed to the lane's limit)."""


class _RoundaboutRingLimitMixin:
    """Sets :data:`ROUNDABOUT_RING_SPEED_LIMIT_MPS` on the roundabout's ring (its circular
    lanes) when the road is built, before any vehicle is placed."""

    def _make_road(self) -> None:
        super()._make_road()
        for lane in self.road.network.lanes_list():
            if isinstance(lane, CircularLane):
                lane.speed_limit = ROUNDABOUT_RING_SPEED_LIMIT_MPS


_RING_LIMIT_ENVS = frozenset({"roundabout-generic-v1"})


@functools.cache
def highway_env_class(env_id: str, fast: bool) -> type:
    """The highway-env class used for ``env_id``, with the project's mixins (cached)."""
    base = highway_env_entry_class(env_id)
    if fast:
        from envs.fast import fast_env_class, is_supported

        if is_supported(env_id):
            base = fast_env_class(base)
    mixins: tuple[type, ...] = (_PixelObservationMixin,)
    if env_id in _DISCRETE_REWARD_ENVS:
        mixins += (_ContinuousLaneChangeRewardMixin,)
    if env_id in _RING_LIMIT_ENVS:
        mixins += (_RoundaboutRingLimitMixin,)
    return type(f"Driving{base.__name__}", (*mixins, base), {})


class DrivingEnv(gymnasium.Env):
    """A scenario as a gymnasium environment.

    Args:
        scenario: a registered scenario name or a :class:`Scenario`.
        overrides: highway-env config keys and spec fields to override (see
            :meth:`Scenario.with_overrides`); recorded in ``self.scenario.overrides``.
        render_mode: ``None``, ``"rgb_array"`` or ``"human"`` (a live pygame window).
        fast: use the accelerated simulation (``None``: :data:`FAST_SIM_DEFAULT`).
        idm_hint: compute ``info["idm_action"]`` (costs one IDM/MOBIL decision per step).
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 5}

    def __init__(
        self,
        scenario: str | Scenario = "highway",
        overrides: dict[str, Any] | None = None,
        render_mode: str | None = None,
        fast: bool | None = None,
        idm_hint: bool = True,
    ) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise UserError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.scenario = get_scenario(scenario).with_overrides(overrides)
        self.fast = FAST_SIM_DEFAULT if fast is None else fast
        self.render_mode = render_mode
        self.idm_hint = idm_hint
        cls = highway_env_class(self.scenario.env_id, self.fast)
        self.sim = cls(config=self.scenario.highway_config(), render_mode=render_mode)
        self.metadata = {**self.metadata, "render_fps": self.scenario.policy_frequency}
        obs_spec, act_spec = self.scenario.observation, self.scenario.action
        self.observation_space = spaces.Box(0, 255, obs_spec.shape, dtype=np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (act_spec.size,), dtype=np.float32)
        self._shadow: IdmShadow | None = None
        self._steps = 0
        nuisances = scenario_nuisances(self.scenario.overrides)
        self.nuisances = (
            SensorNuisances(nuisances, obs_spec.channels // obs_spec.stack) if nuisances else None
        )

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        raw, _ = self.sim.reset(seed=seed)
        self._steps = 0
        self._shadow = IdmShadow(self.sim, self.scenario.dt) if self.idm_hint else None
        obs = self._observation(raw)
        if self.nuisances is not None:
            # the episode seed keys the nuisances' draws; an unseeded reset draws one
            episode_seed = seed if seed is not None else int(self.np_random.integers(2**31))
            obs = self.nuisances.reset(obs, episode_seed)
        return obs, self._info(np.zeros(2, dtype=np.float32), {})

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        applied = self._applied_action(action)
        raw, reward, terminated, truncated, sim_info = self.sim.step(applied)
        self._steps += 1
        truncated = bool(truncated) or self._steps >= self.scenario.steps_per_episode
        info = self._info(applied, sim_info.get("rewards", {}))
        if self.scenario.route is not None:
            metrics = info["metrics"]
            terminated = bool(terminated) or metrics["goal"] > 0.5 or metrics["on_road"] < 0.5
        obs = self._observation(raw)
        if self.nuisances is not None:
            obs = self.nuisances.step(obs)
        return obs, float(reward), bool(terminated), truncated, info

    def render(self) -> np.ndarray | None:
        """The simulator's view (``rgb_array``: ``(H, W, 3)`` uint8) or the live window."""
        return self.sim.render()

    def close(self) -> None:
        self.sim.close()

    # -- helpers -------------------------------------------------------------------------------
    def _applied_action(self, action: np.ndarray) -> np.ndarray:
        """Map the agent's normalised action to highway-env's ``[accel, steer]`` in [-1, 1]."""
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        spec = self.scenario.action
        if a.shape != (spec.size,):
            raise ValueError(
                f"action must have shape ({spec.size},) {spec.names} for scenario "
                f"{self.scenario.name!r}, got {np.shape(action)}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a}")
        a = np.clip(a, -1.0, 1.0)
        if spec.mode == "steer":
            accel = spec.speed_gain * (spec.cruise_speed - self.sim.vehicle.speed)
            a = np.array([accel / ACCELERATION_RANGE_MPS2[1], a[0]], dtype=np.float32)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def _observation(self, raw: np.ndarray) -> np.ndarray:
        """``(stack, W, H)`` gray or ``(stack, W, H, 3)`` RGB -> ``(C, H, W)`` uint8."""
        if raw.ndim == 3:
            return np.ascontiguousarray(raw.transpose(0, 2, 1))
        stack, width, height, _ = raw.shape
        return np.ascontiguousarray(raw.transpose(0, 3, 2, 1).reshape(stack * 3, height, width))

    def _info(self, applied: np.ndarray, reward_terms: dict[str, float]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "scene": extract_scene(self.sim, self.scenario.route),
            "metrics": step_metrics(self.sim, self.scenario.route),
            "applied_action": applied,
            "reward_terms": {k: float(v) for k, v in reward_terms.items()},
            "time": float(self.sim.time),
        }
        if self._shadow is not None:
            info["idm_action"] = self._shadow.action()
        return info
