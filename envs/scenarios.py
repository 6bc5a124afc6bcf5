"""Named driving scenarios: a complete highway-env config plus specs and seed ranges.

A scenario is everything needed to rebuild an environment exactly: the highway-env id, the full
config, the observation and action specs, the policy frequency, and disjoint seed ranges for
training, validation and held-out evaluation. Held-out evaluation seeds are never used to
collect training data.

Example::

    from envs.scenarios import get_scenario
    scenario = get_scenario("highway").with_overrides({"vehicles_count": 20, "duration": 10})
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from envs.errors import UserError, unknown_choice
from envs.nuisances import parse_nuisances
from envs.spec import GRAY_WEIGHTS, ActionSpec, ObservationSpec


@dataclass(frozen=True)
class SeedRange:
    """A half-open range of episode seeds ``[start, stop)``."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop <= self.start:
            raise UserError(f"bad seed range {self.start}:{self.stop}; need 0 <= start < stop")

    def __len__(self) -> int:
        return self.stop - self.start

    def __contains__(self, seed: object) -> bool:
        return isinstance(seed, int) and self.start <= seed < self.stop

    def overlaps(self, other: SeedRange) -> bool:
        """Whether the two ranges share a seed."""
        return self.start < other.stop and other.start < self.stop

    def first(self, n: int) -> list[int]:
        """The first ``n`` seeds of the range (a clear error when it holds fewer)."""
        if n > len(self):
            raise UserError(f"asked for {n} seeds but range {self} holds only {len(self)}")
        return list(range(self.start, self.start + n))

    def __str__(self) -> str:
        return f"{self.start}:{self.stop}"

    @classmethod
    def parse(cls, text: str) -> SeedRange:
        """Parse ``"A:B"`` (half-open) or a single seed ``"A"``."""
        parts = text.split(":")
        try:
            if len(parts) == 1:
                start = int(parts[0])
                return cls(start, start + 1)
            if len(parts) == 2:
                return cls(int(parts[0]), int(parts[1]))
        except ValueError:
            pass
        raise UserError(f"bad seed range {text!r}; expected A:B with integers 0 <= A < B")


TRAIN_SEEDS = SeedRange(0, 100_000)
VALIDATION_SEEDS = SeedRange(100_000, 110_000)
EVALUATION_SEEDS = SeedRange(1_000_000, 1_100_000)


@dataclass(frozen=True)
class Route:
    """The ego car's route through a road network with junctions (a roundabout, an exit).

    highway-env names a road by the pair of nodes it joins; the ego car of a continuous-action
    env has no route of its own (only highway-env's discrete-action vehicles plan one), so the
    scenario names it.

    Args:
        nodes: the road-network nodes the route passes, in order (consecutive pairs are roads).
            At a junction the scene's lane centre lines follow the route where a lane joins the
            route's next road (:func:`envs.scene.extract_scene`).
        goal_distance: the route ends this far [m] along its last road
            (``nodes[-2] -> nodes[-1]``); getting there ends the episode (``terminated``), and
            only an episode that gets there counts as ``completed``.
    """

    nodes: tuple[str, ...]
    goal_distance: float

    def __post_init__(self) -> None:
        if len(self.nodes) < 2 or not self.goal_distance >= 0:
            raise ValueError(f"bad route {self}: need 2 nodes or more and goal_distance >= 0")

    @property
    def last_road(self) -> tuple[str, str]:
        """The route's last road ``(from, to)``."""
        return self.nodes[-2], self.nodes[-1]

    def next_node(self, road: tuple[str, str]) -> str | None:
        """The node the route takes after ``road`` ``(from, to)``, None if ``road`` is not on it
        or is its last."""
        for a, b, c in zip(self.nodes, self.nodes[1:], self.nodes[2:], strict=False):
            if (a, b) == road:
                return c
        return None


@dataclass(frozen=True)
class Scenario:
    """A named, complete driving scenario.

    Args:
        name: registry name, e.g. ``"highway"``.
        env_id: the highway-env environment id it is built on.
        description: one line for ``--help`` and reports.
        config: highway-env config keys (merged over the env's own defaults). ``observation`` and
            ``action`` are not set here: they come from ``observation`` and ``action`` below.
        observation: the pixel observation spec.
        action: the continuous action spec.
        duration: episode time limit [s]; the episode is truncated (not terminated) there.
        policy_frequency: decisions per second [Hz].
        simulation_frequency: simulator steps per second [Hz].
        train_seeds, validation_seeds, evaluation_seeds: disjoint seed ranges.
        route: the ego car's route and goal where the road has junctions (None on roads
            without a choice: there the episode ends at the time limit or the scenario's own end).
        overrides: the overrides applied on top of the registered scenario (recorded).
    """

    name: str
    env_id: str
    description: str
    config: dict[str, Any]
    observation: ObservationSpec = field(default_factory=ObservationSpec)
    action: ActionSpec = field(default_factory=ActionSpec)
    duration: float = 40.0
    policy_frequency: int = 5
    simulation_frequency: int = 15
    train_seeds: SeedRange = TRAIN_SEEDS
    validation_seeds: SeedRange = VALIDATION_SEEDS
    evaluation_seeds: SeedRange = EVALUATION_SEEDS
    route: Route | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ranges = {
            "train": self.train_seeds,
            "validation": self.validation_seeds,
            "evaluation": self.evaluation_seeds,
        }
        names = list(ranges)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if ranges[a].overlaps(ranges[b]):
                    raise ValueError(f"scenario {self.name}: {a} and {b} seed ranges overlap")

    @property
    def steps_per_episode(self) -> int:
        """Policy steps in a full-length episode."""
        return round(self.duration * self.policy_frequency)

    @property
    def dt(self) -> float:
        """Seconds between two decisions."""
        return 1.0 / self.policy_frequency

    def highway_config(self) -> dict[str, Any]:
        """The complete config handed to highway-env (observation and action included)."""
        obs = self.observation
        cfg = copy.deepcopy(self.config)
        if obs.kind == "gray":
            observation: dict[str, Any] = {
                "type": "GrayscaleObservation",
                "observation_shape": (obs.width, obs.height),
                "stack_size": obs.stack,
                "weights": list(GRAY_WEIGHTS),
            }
        else:
            observation = {
                "type": "RGBStackObservation",
                "observation_shape": (obs.width, obs.height),
                "stack_size": obs.stack,
            }
        observation.update(scaling=obs.scaling, centering_position=list(obs.centering))
        cfg.update(
            observation=observation,
            action={"type": "ContinuousAction", "longitudinal": True, "lateral": True},
            policy_frequency=self.policy_frequency,
            simulation_frequency=self.simulation_frequency,
            duration=self.duration,
        )
        return cfg

    def with_overrides(self, overrides: dict[str, Any] | None) -> Scenario:
        """A copy with highway-env config keys (and spec fields) overridden.

        ``overrides`` maps any highway-env config key of this scenario's env to a value of the
        same type, plus ``duration``, ``policy_frequency``, ``simulation_frequency``, and the
        nested mappings ``observation`` (fields of :class:`ObservationSpec`) and ``action``
        (fields of :class:`ActionSpec`), and ``nuisance`` (sensor nuisances on the pixels, see
        :mod:`envs.nuisances`). Unknown keys and wrongly typed values are a
        :class:`UserError` naming the valid choices. The overrides are recorded in
        ``self.overrides`` (merged with earlier ones).
        """
        if not overrides:
            return self
        if not isinstance(overrides, dict):
            raise UserError(f"overrides must be a JSON object, got {type(overrides).__name__}")
        check_override_values(overrides)
        defaults = highway_defaults(self.env_id)
        defaults.update(self.config)
        cfg = copy.deepcopy(self.config)
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key == "observation":
                merged = {**self.observation.to_dict(), **_mapping(key, value)}
                changes["observation"] = ObservationSpec.from_dict(merged)
            elif key == "action":
                merged = {**self.action.to_dict(), **_mapping(key, value)}
                changes["action"] = ActionSpec.from_dict(merged)
            elif key == "nuisance":
                parse_nuisances(value)  # checked here, applied by DrivingEnv (envs.nuisances)
            elif key in ("duration",):
                changes[key] = _positive_number(key, value)
            elif key in ("policy_frequency", "simulation_frequency"):
                changes[key] = _positive_int(key, value)
            elif key in defaults:
                cfg[key] = _checked_value(key, value, defaults[key])
            else:
                valid = [k for k in defaults if k not in ("observation", "action")]
                valid += [
                    "observation",
                    "action",
                    "duration",
                    "policy_frequency",
                    "simulation_frequency",
                    "nuisance",
                ]
                raise unknown_choice(f"config key for scenario {self.name!r}", key, valid)
        sim, pol = (
            changes.get("simulation_frequency", self.simulation_frequency),
            changes.get("policy_frequency", self.policy_frequency),
        )
        if sim % pol:
            raise UserError(
                f"simulation_frequency ({sim} Hz) must be a multiple of policy_frequency ({pol} Hz)"
            )
        lanes, lane = cfg.get("lanes_count"), cfg.get("initial_lane_id")
        if isinstance(lanes, int) and isinstance(lane, int) and not lane < lanes:
            raise UserError(f"initial_lane_id {lane} does not exist: lanes are 0..{lanes - 1}")
        recorded = {**self.overrides, **copy.deepcopy(overrides)}
        return replace(self, config=cfg, overrides=recorded, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the scenario, overrides included, to store with results."""
        return {
            "name": self.name,
            "env_id": self.env_id,
            "overrides": copy.deepcopy(self.overrides),
            "config": json.loads(json.dumps(self.highway_config(), default=list)),
            "observation": self.observation.to_dict(),
            "action": self.action.to_dict(),
            "duration": self.duration,
            "policy_frequency": self.policy_frequency,
            "simulation_frequency": self.simulation_frequency,
            "seeds": {
                "train": str(self.train_seeds),
                "validation": str(self.validation_seeds),
                "evaluation": str(self.evaluation_seeds),
            },
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Scenario:
        """Rebuild a scenario from :meth:`to_dict` output: registered name plus overrides."""
        if not isinstance(record, dict) or "name" not in record:
            raise UserError("scenario record must be a mapping with a 'name'")
        return get_scenario(record["name"]).with_overrides(record.get("overrides") or {})


@dataclass(frozen=True)
class Bounds:
    """The numbers an override key accepts: ``low <= value <= high`` (``low`` itself excluded
    when ``low_open``), integers only when ``integer``; a list's items are checked one by one.

    Args:
        low, high: the range, in ``unit``.
        integer: only whole numbers.
        low_open: ``low`` itself is refused (a positive quantity).
        unit: the unit, for the message.
    """

    low: float
    high: float
    integer: bool = False
    low_open: bool = False
    unit: str = ""

    def check(self, key: str, value: Any) -> None:
        """A :class:`UserError` naming ``key`` unless ``value`` is in range."""
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None or isinstance(item, bool) or not isinstance(item, int | float):
                continue  # the type check (against the default value) reports these
            low_ok = item > self.low if self.low_open else item >= self.low
            whole = not self.integer or isinstance(item, int)
            if not (low_ok and item <= self.high and whole):
                kind = "an integer" if self.integer else "a number"
                opening = "(" if self.low_open else "["
                unit = f" {self.unit}" if self.unit else ""
                raise UserError(
                    f"override {key} must be {kind} in {opening}{self.low:g}, {self.high:g}]"
                    f"{unit}, got {item!r}"
                )


OVERRIDE_BOUNDS: dict[str, Bounds] = {
    "duration": Bounds(0, 3600, low_open=True, unit="s"),
    "policy_frequency": Bounds(1, 60, integer=True, unit="Hz"),
    "simulation_frequency": Bounds(1, 240, integer=True, unit="Hz"),
    "lanes_count": Bounds(1, 10, integer=True),
    "initial_lane_id": Bounds(0, 9, integer=True),  # and below lanes_count (with_overrides)
    "vehicles_count": Bounds(0, 200, integer=True),  # highway-env places them all at reset
    "other_vehicles": Bounds(0, 50, integer=True),
    "controlled_vehicles": Bounds(1, 1, integer=True),  # one ego car per environment
    "vehicles_density": Bounds(0, 10, low_open=True),
    "ego_spacing": Bounds(0, 10, low_open=True),
    "speed_limit": Bounds(0, 60, low_open=True, unit="m/s"),
    "reward_speed_range": Bounds(0, 60, unit="m/s"),
    "screen_width": Bounds(16, 4096, integer=True, unit="px"),
    "screen_height": Bounds(16, 4096, integer=True, unit="px"),
    "scaling": Bounds(0, 100, low_open=True, unit="px/m"),
    "centering_position": Bounds(0, 1),
    # An observation holds at most 3 * 16 * 1024 * 1024 bytes (48 MiB, rgb): datasets and
    # batches of them still fit in memory.
    "observation.width": Bounds(16, 1024, integer=True, unit="px"),
    "observation.height": Bounds(16, 1024, integer=True, unit="px"),
    "observation.stack": Bounds(1, 16, integer=True),
    "observation.scaling": Bounds(0, 50, low_open=True, unit="px/m"),
    "observation.centering": Bounds(0, 1),
    "action.cruise_speed": Bounds(0, 60, unit="m/s"),
    "action.speed_gain": Bounds(0, 10, low_open=True, unit="1/s"),
}
"""The range of every numeric override key with one (``observation.*`` and ``action.*`` are
the fields of the nested mappings), checked in one place by :func:`check_override_values`."""


def check_override_values(overrides: dict[str, Any], prefix: str = "") -> None:
    """Every number in ``overrides`` (at any depth) must be finite, and every key of
    :data:`OVERRIDE_BOUNDS` within its range (a :class:`UserError` naming the key)."""
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            check_override_values(value, f"{name}.")
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, float) and not math.isfinite(item):
                raise UserError(f"override {name} must be a finite number, got {item!r}")
        if name in OVERRIDE_BOUNDS:
            OVERRIDE_BOUNDS[name].check(name, value)


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"override {key!r} must be a mapping, got {value!r}")
    return value


def _positive_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UserError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{key} must be a positive integer, got {value!r}")
    return value


def _checked_value(key: str, value: Any, default: Any) -> Any:
    """Check an override against the type of the default value it replaces (its range is
    :data:`OVERRIDE_BOUNDS`'s)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(default, list | tuple):
        ok = isinstance(value, list | tuple)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise UserError(
            f"bad value {value!r} for config key {key!r}: expected a value like {default!r}"
        )
    return value


def highway_env_entry_class(env_id: str) -> type:
    """highway-env's own environment class registered as ``env_id`` (e.g. ``highway-v0``)."""
    import gymnasium
    import highway_env  # noqa: F401  (registers the highway-env ids)

    entry = str(gymnasium.spec(env_id).entry_point)
    module, _, name = entry.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


def highway_defaults(env_id: str) -> dict[str, Any]:
    """highway-env's default config for ``env_id``."""
    return highway_env_entry_class(env_id).default_config()


_HIGHWAY = {
    "lanes_count": 4,
    "vehicles_count": 50,
    "vehicles_density": 1.0,
    "ego_spacing": 2,
    "initial_lane_id": None,
    "offroad_terminal": True,  # leaving the road ends the episode (a car in the ditch)
}

_SQUARE_VIEW = ObservationSpec(width=128, height=128, scaling=2.5, centering=(0.5, 0.5))
"""A square view centred on the ego car (51 m across) for roads that turn: the ring of the
roundabout (48 m across) fits in it whichever way the car faces."""

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="highway",
            env_id="highway-v0",
            description="4-lane straight highway, 50 IDM/MOBIL cars (highway-v0 defaults)",
            config=dict(_HIGHWAY),
        ),
        Scenario(
            name="highway-dense",
            env_id="highway-v0",
            description="4-lane highway with more and closer traffic (80 cars, density 1.5)",
            config={**_HIGHWAY, "vehicles_count": 80, "vehicles_density": 1.5},
        ),
        Scenario(
            name="racetrack",
            env_id="racetrack-v0",
            description="closed circuit with tight curves; steering only, speed held at 10 m/s",
            config={"other_vehicles": 2, "terminate_off_road": True, "speed_limit": 10.0},
            action=ActionSpec(mode="steer", cruise_speed=10.0),
            observation=ObservationSpec(width=128, height=128, scaling=3.0, centering=(0.5, 0.5)),
        ),
        Scenario(
            name="merge",
            env_id="merge-v0",
            description="highway with an on-ramp merging from the right; ends past the ramp",
            config={},
            duration=30.0,
        ),
        Scenario(
            # roundabout-v0's entries and exits stop up to 5.6 m short of the ring, so a car that
            # follows them is off every lane for a moment; the generic roundabout fits them to it
            # (and its -v1 lets the traffic see leaders across lane segments)
            name="roundabout",
            env_id="roundabout-generic-v1",
            description="two-lane roundabout, 5 IDM cars: enter from the south, yield to the ring, "
            "take the second exit (north); ring limit 10 m/s",
            config={},
            observation=_SQUARE_VIEW,
            duration=25.0,
            route=Route(("ser", "ses", "se", "ex", "ee", "nx", "nxs", "nxr"), goal_distance=20.0),
        ),
        Scenario(
            name="exit",
            env_id="exit-v1",
            description="6-lane highway, slower traffic to the right: cross to the exit lane "
            "(400-500 m) and take the exit; 40 s, as crossing five lanes into 9-12 m/s traffic "
            "and covering ~360 m does not fit exit-v0's 30 s for a driver who keeps safe gaps",
            config={},
            observation=ObservationSpec(width=160, height=128, scaling=3.0, centering=(0.3, 0.5)),
            duration=40.0,
            route=Route(("0", "1", "2", "exit"), goal_distance=30.0),
        ),
    )
}
"""The registered scenarios, by name."""


def get_scenario(name: str) -> Scenario:
    """The registered scenario called ``name`` (a :class:`UserError` listing choices if none)."""
    if isinstance(name, Scenario):
        return name
    try:
        return SCENARIOS[name]
    except (KeyError, TypeError):
        raise unknown_choice("scenario", str(name), SCENARIOS) from None
