"""A per-episode driving score in [0, 1] that keeps separating agents that never crash.

The score follows nuPlan's closed-loop score (CLS: motional/nuplan-devkit, metric aggregator
``closed_loop_reactive_agents_weighted_average``; Caesar et al. 2021, "nuPlan: A closed-loop
ML-based planning benchmark for autonomous vehicles") and NAVSIM's PDM score (Dauner et al.
2024, "NAVSIM: Data-Driven Non-Reactive Autonomous Vehicle Simulation and Benchmarking"):
penalties that zero or cut the score, times a weighted mean of sub-scores::

    score = penalty_collision * penalty_drivable * penalty_direction
            * (5 progress + 5 ttc + 4 speed_limit + 2 comfort + 2 lane_keeping) / 18

Penalties (1 = no infraction):

- ``collision``: 0 after an at-fault collision (:func:`at_fault_collision`), else 1.
- ``drivable``: 0 if the car left the road at any step (highway-env's ``on_road``: its centre on
  a lane; nuPlan and PDM test the four corners against the drivable area), else 1.
- ``direction``: nuPlan's driving-direction compliance: the largest distance driven against the
  lane's direction within any :data:`DIRECTION_WINDOW_S` is below :data:`DIRECTION_COMPLIANT_M`
  (1), below :data:`DIRECTION_VIOLATION_M` (0.5), or not (0).

Sub-scores, each in [0, 1]:

- ``progress``: distance driven along the lane over the distance the lane's speed limit allows
  in the same time (``sum(limit * dt)``), capped at 1: a crawl lowers it in proportion.
- ``ttc``: share of decisions after which the time to collision with the car ahead (constant
  speeds, :func:`envs.scene.step_metrics`) is at least :data:`TTC_THRESHOLD_S`.
- ``speed_limit``: nuPlan's speed-limit compliance, ``1 - mean over-speed / 2.23 m/s``, at least 0.
- ``comfort``: share of decisions at which all six bounds of nuPlan's ``ego_is_comfortable``
  hold (:data:`MIN_LON_ACCEL_MPS2` ... :data:`MAX_ABS_YAW_ACCEL_RADPS2`), on signals smoothed as
  nuPlan smooths them.
- ``lane_keeping``: ``1 - mean(min(1, |lane offset| / LANE_MARGIN_M))``, lane changes excused
  (:func:`lane_change_steps`).

Where this departs from nuPlan and PDM, and why:

- nuPlan's and PDM's TTC and comfort terms are pass/fail over the whole episode; here they are
  shares of decisions, so one close moment costs in proportion instead of the whole term, and
  the term does not saturate at 1 for every agent that never brakes hard.
- nuPlan measures progress against the human expert's, PDM against its best proposal; there is
  no expert trajectory here, so the reference is the speed limit over the time driven.
- nuPlan's ``ego_is_making_progress`` multiplier (0 below a fifth of the expert's progress) is
  left out: a crawl already lowers ``progress`` in proportion.
- ``lane_keeping`` stands for the lane-keeping term of NAVSIM v2's EPDMS (Cao et al. 2025,
  "Pseudo-Simulation for Autonomous Driving"; weight 2, there binary: 0 once the offset stays
  above 0.5 m for 2 s) made proportional, so that a steady offset costs in proportion to its
  size. As there, a lane change done within 2 s costs nothing; a slower one costs.
- There is one collision at most: highway-env ends the episode at the first crash.

Early ends: an episode that ends on an at-fault collision or off the road scores 0 through its
penalty; one that ends at the scenario's goal (merge) or on a collision that is not the ego's
fault is scored on the time it drove, so arriving early costs no progress.

Inputs are an :class:`~driving.rollout.Episode`'s per-step ``metrics`` (each ``(T + 1,)``,
index 0 the state at reset, index ``t + 1`` the state after decision ``t``) and ``dt``; the
lane's speed limit comes per step with them, so the score needs nothing from the scenario.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import savgol_filter

from driving.rollout import Episode

WEIGHT_PROGRESS = 5.0
"""Weight of ``progress`` in the weighted mean (nuPlan CLS ``ego_progress_along_expert_route``
5.0; PDM ``progress_weight`` 5.0)."""
WEIGHT_TTC = 5.0
"""Weight of ``ttc`` (nuPlan CLS ``time_to_collision_within_bound`` 5.0; PDM ``ttc_weight``
5.0)."""
WEIGHT_SPEED_LIMIT = 4.0
"""Weight of ``speed_limit`` (nuPlan CLS ``speed_limit_compliance`` 4.0; PDM has no such term)."""
WEIGHT_COMFORT = 2.0
"""Weight of ``comfort`` (nuPlan CLS ``ego_is_comfortable`` 2.0; PDM ``comfortable_weight``
2.0)."""
WEIGHT_LANE_KEEPING = 2.0
"""Weight of ``lane_keeping`` (NAVSIM v2 EPDMS ``lane_keeping_weight`` 2.0; not in nuPlan CLS)."""

TTC_THRESHOLD_S = 0.95
"""Time to collision [s] with the car ahead at or above which a decision complies (nuPlan
``time_to_collision_within_bound``: ``least_min_ttc`` 0.95 s)."""

MAX_OVERSPEED_MPS = 2.23
"""Mean over-speed [m/s] above the lane limit at which ``speed_limit`` reaches 0 (nuPlan
``speed_limit_compliance``: ``max_overspeed_value_threshold`` 2.23 m/s, i.e. 5 mph)."""

MIN_LON_ACCEL_MPS2 = -4.05
"""Lowest comfortable longitudinal acceleration [m/s²] (nuPlan ``ego_lon_acceleration``
``min_lon_accel``; NAVSIM ``pdm_comfort_metrics``)."""
MAX_LON_ACCEL_MPS2 = 2.40
"""Highest comfortable longitudinal acceleration [m/s²] (nuPlan ``max_lon_accel``)."""
MAX_ABS_LAT_ACCEL_MPS2 = 4.89
"""Largest comfortable |lateral acceleration| [m/s²] (nuPlan ``max_abs_lat_accel``)."""
MAX_ABS_LON_JERK_MPS3 = 4.13
"""Largest comfortable |longitudinal jerk| [m/s³] (nuPlan ``max_abs_lon_jerk``)."""
MAX_ABS_MAG_JERK_MPS3 = 8.37
"""Largest comfortable |jerk of the acceleration magnitude| [m/s³] (nuPlan
``max_abs_mag_jerk``)."""
MAX_ABS_YAW_RATE_RADPS = 0.95
"""Largest comfortable |yaw rate| [rad/s] (nuPlan ``max_abs_yaw_rate``)."""
MAX_ABS_YAW_ACCEL_RADPS2 = 1.93
"""Largest comfortable |yaw acceleration| [rad/s²] (nuPlan ``max_abs_yaw_accel``)."""
COMFORT_FILTER_WINDOW_S = 1.4
"""Span [s] of the Savitzky-Golay filter (order :data:`COMFORT_FILTER_ORDER`) that smooths and
differentiates the comfort signals. nuPlan's ``state_extractors`` filter accelerations and jerk
over 15 samples at 10 Hz (1.4 s); finite differences of 0.2 s steps would measure the
integrator's step response rather than what a passenger feels. The window is rounded up to an
odd number of samples (9 at 5 Hz) and shrunk to the episode when shorter."""
COMFORT_FILTER_ORDER = 2
"""Polynomial order of that filter (nuPlan ``poly_order`` 2)."""

LANE_CHANGE_OFFSET_M = 0.5
"""|Lane offset| [m] above which the car counts as away from its lane's centre when telling a
lane change apart (NAVSIM v2 ``lane_keeping_deviation_limit`` 0.5 m)."""
LANE_CHANGE_MAX_S = 2.0
"""Longest time [s] away from the centre that a lane change is excused for (NAVSIM v2
``lane_keeping_horizon_window`` 2 s)."""

LANE_MARGIN_M = 1.0
"""|Lane offset| [m] at which the car's side reaches the lane marking: highway-env's lane width
(4 m) minus its car width (2 m), halved. ``lane_keeping`` falls linearly to 0 there, and a
side collision there is the ego's fault (PDM: a lateral collision while in several lanes)."""

DIRECTION_WINDOW_S = 1.0
"""Window [s] over which distance driven against the lane direction adds up (nuPlan
``driving_direction_compliance``: ``time_horizon`` 1 s)."""
DIRECTION_COMPLIANT_M = 2.0
"""Distance [m] against the lane direction within one window below which ``direction`` is 1
(nuPlan ``driving_direction_compliance_threshold`` 2 m)."""
DIRECTION_VIOLATION_M = 6.0
"""Distance [m] within one window below which ``direction`` is 0.5, and 0 from there (nuPlan
``driving_direction_violation_threshold`` 6 m)."""

STOPPED_SPEED_MPS = 0.05
"""Speed [m/s] at or below which the ego counts as stopped, so a collision is not its fault
(nuPlan's collision classification, ``STOPPED_EGO_COLLISION``: ``stopped_speed_threshold``
5e-2 m/s)."""
CONTACT_GAP_M = 0.5
"""Bumper-to-bumper gap [m] along the lane below which the car ahead or behind is the one
touching the ego at a collision. highway-env detects the crash on the rotated bodies while the
gap is measured along the lane, hence a tolerance above 0."""


@dataclass(frozen=True)
class DrivingScore:
    """The driving score of one episode, its sub-scores and its penalties, all in [0, 1].

    ``score = penalty_collision * penalty_drivable * penalty_direction * weighted mean`` of the
    five sub-scores (weights :data:`WEIGHT_PROGRESS` ... :data:`WEIGHT_LANE_KEEPING`).
    """

    score: float
    progress: float
    ttc: float
    speed_limit: float
    comfort: float
    lane_keeping: float
    penalty_collision: float
    penalty_drivable: float
    penalty_direction: float

    def to_row(self) -> dict[str, float]:
        """Flat columns: ``score``, ``score_<sub-score>`` and ``penalty_<penalty>``."""
        return {
            (name if name == "score" or name.startswith("penalty_") else f"score_{name}"): value
            for name, value in asdict(self).items()
        }


def episode_score(episode: Episode) -> DrivingScore:
    """The :class:`DrivingScore` of one episode (see the module docstring for the rules).

    Reads ``episode.metrics`` (``speed``, ``lane_offset``, ``heading_error``, ``heading``,
    ``on_road``, ``crashed``, ``gap_front``, ``gap_rear``, ``ttc_front``, ``x``, ``y``,
    ``lane``, ``speed_limit``, each ``(T + 1,)``) and ``episode.dt`` [s].
    """
    m = episode.metrics
    dt = episode.dt
    along = _along_lane(m)
    sub = {
        "progress": _progress(along, m["speed_limit"][:-1], dt),
        "ttc": float(np.mean(m["ttc_front"][1:] >= TTC_THRESHOLD_S)),
        "speed_limit": _speed_limit(m["speed"][1:], m["speed_limit"][1:]),
        "comfort": _comfort(m["speed"], m["heading"], dt),
        "lane_keeping": _lane_keeping(m["lane_offset"], m["lane"], dt),
    }
    weights = {
        "progress": WEIGHT_PROGRESS,
        "ttc": WEIGHT_TTC,
        "speed_limit": WEIGHT_SPEED_LIMIT,
        "comfort": WEIGHT_COMFORT,
        "lane_keeping": WEIGHT_LANE_KEEPING,
    }
    weighted = sum(weights[k] * sub[k] for k in sub) / sum(weights.values())
    penalties = {
        "penalty_collision": 0.0 if at_fault_collision(m) else 1.0,
        "penalty_drivable": 1.0 if bool(np.all(m["on_road"] > 0.5)) else 0.0,
        "penalty_direction": _direction(along, dt),
    }
    score = math.prod(penalties.values()) * weighted
    return DrivingScore(score=float(score), **sub, **penalties)


def at_fault_collision(metrics: dict[str, np.ndarray]) -> bool:
    """Whether the episode has a collision that is the ego's fault.

    highway-env assigns no fault, so this follows nuPlan's collision types
    (``collision_utils``) as far as the per-step data can tell them apart, looking at the first
    state ``k`` with ``crashed`` set:

    - not at fault if the ego was stopped (speed at ``k - 1`` at most :data:`STOPPED_SPEED_MPS`);
    - at fault if the car ahead in its lane touches it (``gap_front[k] < CONTACT_GAP_M``);
    - not at fault if only the car behind touches it (rear-ended: ``gap_rear[k] < CONTACT_GAP_M``);
    - otherwise a side collision, at fault if the ego was across a lane marking
      (``|lane_offset[k]| > LANE_MARGIN_M``) or off the road, as in PDM.

    Args:
        metrics: per-step metrics, each ``(T + 1,)`` (see :func:`episode_score`).
    """
    crashed = np.flatnonzero(metrics["crashed"] > 0.5)
    if len(crashed) == 0:
        return False
    k = int(crashed[0])
    if metrics["speed"][max(k - 1, 0)] <= STOPPED_SPEED_MPS:
        return False
    if metrics["gap_front"][k] < CONTACT_GAP_M:
        return True
    if metrics["gap_rear"][k] < CONTACT_GAP_M:
        return False
    return bool(abs(metrics["lane_offset"][k]) > LANE_MARGIN_M or metrics["on_road"][k] < 0.5)


def lane_change_steps(lane_offset: np.ndarray, lane: np.ndarray, dt: float) -> np.ndarray:
    """``(T + 1,)`` bool: the states that belong to a lane change, excused from lane keeping.

    A lane change is a run of consecutive states with ``|lane_offset| > LANE_CHANGE_OFFSET_M``
    during which the lane index changes (the car crossed the marking), lasting less than
    :data:`LANE_CHANGE_MAX_S`. ``lane_offset`` [m] and ``lane`` (lane index) are ``(T + 1,)``.
    """
    away = np.abs(lane_offset) > LANE_CHANGE_OFFSET_M
    edges = np.flatnonzero(np.diff(np.concatenate([[0], away.astype(int), [0]])))
    excused = np.zeros(len(away), dtype=bool)
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if (stop - start) * dt < LANE_CHANGE_MAX_S and len(np.unique(lane[start:stop])) > 1:
            excused[start:stop] = True
    return excused


def _lane_keeping(lane_offset: np.ndarray, lane: np.ndarray, dt: float) -> float:
    """``1 - mean(min(1, |lane offset| / LANE_MARGIN_M))`` over the states after each decision,
    a lane change's states (:func:`lane_change_steps`) counting as on the centre."""
    cost = np.minimum(1.0, np.abs(lane_offset) / LANE_MARGIN_M)
    cost[lane_change_steps(lane_offset, lane, dt)] = 0.0
    return float(1.0 - np.mean(cost[1:]))


def _along_lane(m: dict[str, np.ndarray]) -> np.ndarray:
    """``(T,)`` displacement [m] of each decision step along the lane's direction at its start.

    The lane's heading is the ego's heading minus its heading error; a step driven against the
    lane (or in reverse) is negative.
    """
    lane_heading = m["heading"][:-1] - m["heading_error"][:-1]
    dx, dy = np.diff(m["x"]), np.diff(m["y"])
    return dx * np.cos(lane_heading) + dy * np.sin(lane_heading)


def _progress(along: np.ndarray, limit: np.ndarray, dt: float) -> float:
    """Distance along the lane over what the speed limit allows in the same time, in [0, 1].

    ``limit`` ``(T,)`` [m/s] is the lane's limit at the start of each step; a step on a lane
    without a limit (nan) counts as full progress (its reference is what was driven).
    """
    reference = np.where(np.isfinite(limit), limit * dt, np.maximum(along, 0.0))
    total = float(np.sum(reference))
    if total <= 0.0:
        return 0.0
    return float(np.clip(np.sum(along) / total, 0.0, 1.0))


def _speed_limit(speed: np.ndarray, limit: np.ndarray) -> float:
    """nuPlan's speed-limit compliance: ``max(0, 1 - mean over-speed / MAX_OVERSPEED_MPS)``.

    ``speed`` and ``limit`` ``(T,)`` [m/s]; steps on a lane without a limit are not over-speed.
    """
    over = np.where(np.isfinite(limit), np.maximum(speed - np.nan_to_num(limit), 0.0), 0.0)
    return float(max(0.0, 1.0 - np.mean(over) / MAX_OVERSPEED_MPS))


def _comfort(speed: np.ndarray, heading: np.ndarray, dt: float) -> float:
    """Share of decisions at which all of nuPlan's ``ego_is_comfortable`` bounds hold.

    ``speed`` [m/s] and ``heading`` [rad] ``(T + 1,)``. Longitudinal acceleration, yaw rate and
    their derivatives come from the Savitzky-Golay filter of :data:`COMFORT_FILTER_WINDOW_S`;
    lateral acceleration is ``speed * yaw rate`` (the centripetal acceleration of the path).
    An episode too short to differentiate (fewer than 3 states) counts as comfortable.
    """
    n = len(speed)
    window = math.ceil(COMFORT_FILTER_WINDOW_S / dt - 1e-9) + 1
    window += 1 - window % 2
    window = min(window, n if n % 2 else n - 1)
    if window <= COMFORT_FILTER_ORDER:
        return 1.0

    def rate(signal: np.ndarray) -> np.ndarray:
        return savgol_filter(signal, window, COMFORT_FILTER_ORDER, deriv=1, delta=dt)

    lon_accel = rate(speed)
    yaw_rate = rate(np.unwrap(heading))
    lat_accel = speed * yaw_rate
    ok = (
        (lon_accel >= MIN_LON_ACCEL_MPS2)
        & (lon_accel <= MAX_LON_ACCEL_MPS2)
        & (np.abs(lat_accel) <= MAX_ABS_LAT_ACCEL_MPS2)
        & (np.abs(rate(lon_accel)) <= MAX_ABS_LON_JERK_MPS3)
        & (np.abs(rate(np.hypot(lon_accel, lat_accel))) <= MAX_ABS_MAG_JERK_MPS3)
        & (np.abs(yaw_rate) <= MAX_ABS_YAW_RATE_RADPS)
        & (np.abs(rate(yaw_rate)) <= MAX_ABS_YAW_ACCEL_RADPS2)
    )
    return float(np.mean(ok[1:]))


def _direction(along: np.ndarray, dt: float) -> float:
    """nuPlan's driving-direction compliance from the ``(T,)`` steps along the lane [m].

    The distance driven against the lane is summed over every trailing window of
    :data:`DIRECTION_WINDOW_S`; the worst window decides 1, 0.5 or 0.
    """
    n = max(1, round(DIRECTION_WINDOW_S / dt))
    cumulative = np.concatenate([[0.0], np.cumsum(along)])
    ends = np.arange(1, len(cumulative))
    windows = cumulative[ends] - cumulative[np.maximum(ends - n, 0)]
    backwards = max(0.0, -float(np.min(windows)))
    if backwards < DIRECTION_COMPLIANT_M:
        return 1.0
    if backwards < DIRECTION_VIOLATION_M:
        return 0.5
    return 0.0
