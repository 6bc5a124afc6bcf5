"""Closed-loop episode metrics, computed from the per-step ``info["metrics"]`` of an episode.

Intervention trigger (a safety driver would take over), evaluated after every decision:
the ego car has crashed, or has left the road (``on_road`` false), or the time to collision
with the car ahead in its lane is below :data:`TAKEOVER_TTC_S`. Each rising edge of the trigger
counts as one intervention. Autonomy follows NVIDIA's "End to End Learning for Self-Driving
Cars" (Bojarski et al., 2016): ``autonomy = 1 - interventions * 6 s / elapsed time``, where 6 s
is the time a human takeover is assumed to cost; it is not clipped, so short episodes with a
takeover can go below 0.

The driving score and its parts (``score``, ``score_*``, ``penalty_*``) are those of
:func:`driving.score.episode_score`.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from driving.rollout import Episode
from driving.score import episode_score
from envs.spec import STEERING_RANGE_RAD

Kind = Literal["rate", "count", "mean"]
"""How a metric is aggregated over episodes (:func:`driving.stats.summarize_kind`)."""

TAKEOVER_TTC_S = 1.0
"""Time to collision [s] with the car ahead below which a safety driver takes over."""
TAKEOVER_COST_S = 6.0
"""Seconds of lost autonomy per intervention (NVIDIA 2016)."""

METRICS: dict[str, tuple[str, Kind]] = {
    "score": ("driving score in [0, 1]: penalties x weighted sub-scores (driving.score)", "mean"),
    "score_progress": ("distance along the lane / what the speed limit allows", "mean"),
    "score_ttc": ("share of steps with time to collision ahead >= 0.95 s", "mean"),
    "score_speed_limit": ("1 - mean over-speed / 2.23 m/s (nuPlan)", "mean"),
    "score_comfort": ("share of steps within nuPlan's comfort bounds", "mean"),
    "score_lane_keeping": ("1 - mean min(1, |lane offset| / 1 m), lane changes excused", "mean"),
    "penalty_collision": ("share of episodes without an at-fault collision", "rate"),
    "penalty_drivable": ("share of episodes never off the road", "rate"),
    "penalty_direction": ("driving-direction compliance: 1, 0.5 or 0 (nuPlan)", "mean"),
    "collided": ("share of episodes with a collision", "rate"),
    "completed": (
        "share of episodes driven to the scenario's end (the time limit, the merge's end, a "
        "route's goal) without collision, always on the road",
        "rate",
    ),
    "distance_m": ("distance driven [m]", "mean"),
    "mean_speed_mps": ("mean speed [m/s]", "mean"),
    "offroad_time_s": ("time off the road [s]", "mean"),
    "lane_offset_m": ("mean |lateral offset from the lane centre| [m]", "mean"),
    "steering_jerk_radps2": ("mean |second derivative of the steering angle| [rad/s²]", "mean"),
    "return": ("sum of the environment's rewards", "mean"),
    "interventions": ("safety-driver takeovers (crash, off-road, TTC < 1 s)", "count"),
    "autonomy": ("1 - interventions * 6 s / elapsed time (NVIDIA 2016)", "mean"),
    "latency_ms": ("decision time per step [ms]", "mean"),
    "duration_s": ("simulated episode duration [s]", "mean"),
}
"""Metric name -> (description, kind): a 0/1 ``rate`` (Wilson interval), a ``count`` per
episode (exact Poisson interval, never below 0) or a ``mean`` (Student t interval)."""


def intervention_trigger(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """``(T,)`` bool: whether a safety driver would hold the wheel after each decision."""
    crashed = metrics["crashed"][1:] > 0.5
    offroad = metrics["on_road"][1:] < 0.5
    close = metrics["ttc_front"][1:] < TAKEOVER_TTC_S
    return crashed | offroad | close


def episode_metrics(episode: Episode) -> dict[str, float]:
    """The per-episode figures of :data:`METRICS` for one episode."""
    m = episode.metrics
    dt = episode.dt
    collided = bool(np.any(m["crashed"][1:] > 0.5))
    ended_on_road = bool(m["on_road"][-1] > 0.5)
    always_on_road = bool(np.all(m["on_road"] > 0.5))
    if "goal" in m:  # a scenario with a route: completed means its goal was reached
        ended_well = bool(m["goal"][-1] > 0.5)
    else:
        ended_well = episode.truncated or (episode.terminated and ended_on_road)
    completed = not collided and always_on_road and ended_well
    xy = np.stack([m["x"], m["y"]], axis=1)
    steer = episode.applied[:, 1] * STEERING_RANGE_RAD[1]
    jerk = float(np.mean(np.abs(np.diff(steer, n=2)))) / dt**2 if len(steer) > 2 else 0.0
    trigger = intervention_trigger(m)
    interventions = int(np.sum(trigger & ~np.concatenate([[False], trigger[:-1]])))
    elapsed = episode.steps * dt
    return {
        "seed": episode.seed,
        "steps": episode.steps,
        "terminated": float(episode.terminated),
        "truncated": float(episode.truncated),
        "collided": float(collided),
        "completed": float(completed),
        "distance_m": float(np.sum(np.linalg.norm(np.diff(xy, axis=0), axis=1))),
        "mean_speed_mps": float(np.mean(m["speed"][1:])),
        "offroad_time_s": float(np.sum(m["on_road"][1:] < 0.5) * dt),
        "lane_offset_m": float(np.mean(np.abs(m["lane_offset"][1:]))),
        "steering_jerk_radps2": jerk,
        "return": float(np.sum(episode.rewards)),
        "interventions": float(interventions),
        "autonomy": 1.0 - interventions * TAKEOVER_COST_S / elapsed if elapsed > 0 else math.nan,
        "latency_ms": float(np.mean(episode.latency_ms)),
        "duration_s": elapsed,
        **episode_score(episode).to_row(),
    }
