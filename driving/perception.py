"""Vision perception measured against the ground truth (``driving perception``).

A driver (``modular-oracle`` by default) drives held-out episodes through
:func:`driving.rollout.iter_episodes`; at every decision the ``on_step`` hook runs
:class:`~agents.modular.vision.VisionPerception` on the observation (handing it only the
speedometer from ``info``) and compares its detections with the ground-truth vehicles of
``info["scene"]`` of the same step, in the ego frame.

Each detection is matched to at most one ground-truth car (greedily, nearest first, within
``--gate`` metres); a detection matched to any car is a true one (a car whose centre is just
outside the image may still be seen), but recall counts only the cars whose centre lies inside
the observation's field of view.
Printed per subset (all cars in view; cars ``0 < x <= 30 m`` ahead): precision, recall (with
Wilson 95% intervals over detections; frames of one episode are correlated, so these intervals
are optimistic), the mean position error of matched cars, their mean speed error, and the error
of the ego lane's centre (lateral) and of the heading estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agents.modular.perception import Detection, OraclePerception, Percept, project
from agents.modular.vision import VisionPerception
from agents.registry import make_agent
from driving.rollout import StepEvent, iter_episodes
from driving.seeds import evaluation_seeds
from driving.stats import wilson_interval
from envs.errors import UserError
from envs.scenarios import Scenario, get_scenario

AHEAD_RANGE_M = 30.0
"""The 'cars ahead' subset: ground-truth cars with ``0 < x <= AHEAD_RANGE_M``."""


@dataclass
class Tally:
    """Counts and error sums of one subset of cars."""

    truth: int = 0
    detected: int = 0
    truth_found: int = 0
    detections_true: int = 0
    position_errors: list[float] = field(default_factory=list)
    speed_errors: list[float] = field(default_factory=list)

    def row(self) -> dict[str, float | int | tuple[float, float] | None]:
        """The subset's figures (nan where undefined)."""
        return {
            "truth": self.truth,
            "detections": self.detected,
            "precision": self.detections_true / self.detected if self.detected else math.nan,
            "precision_ci": wilson_interval(self.detections_true, self.detected),
            "recall": self.truth_found / self.truth if self.truth else math.nan,
            "recall_ci": wilson_interval(self.truth_found, self.truth),
            "position_error_m": _mean(self.position_errors),
            "speed_error_mps": _mean(self.speed_errors),
        }


@dataclass
class PerceptionScore:
    """Everything ``driving perception`` measures.

    Attributes:
        all_cars: cars whose centre is in the field of view.
        ahead: cars ``0 < x <= AHEAD_RANGE_M`` ahead (and in view).
        frames: frames compared.
        lane_errors: per frame, |vision - truth| lateral position [m] of the ego lane's centre.
        heading_errors: per frame, |vision - truth| heading relative to the road [rad].
    """

    all_cars: Tally = field(default_factory=Tally)
    ahead: Tally = field(default_factory=Tally)
    frames: int = 0
    lane_errors: list[float] = field(default_factory=list)
    heading_errors: list[float] = field(default_factory=list)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def in_view(det: Detection, scenario: Scenario) -> bool:
    """Whether a ground-truth car's centre lies inside the observation (ego-frame x, y)."""
    spec = scenario.observation
    u = spec.centering[0] * spec.width + det.x * spec.scaling
    v = spec.centering[1] * spec.height + det.y * spec.scaling
    return 0 <= u < spec.width and 0 <= v < spec.height


def match(truth: list[Detection], found: list[Detection], gate: float) -> list[tuple[int, int]]:
    """Greedy nearest-first one-to-one matching: ``(truth index, detection index)`` pairs."""
    pairs = sorted(
        (math.hypot(t.x - d.x, t.y - d.y), i, j)
        for i, t in enumerate(truth)
        for j, d in enumerate(found)
    )
    used_t, used_d, out = set(), set(), []
    for dist, i, j in pairs:
        if dist > gate:
            break
        if i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
            out.append((i, j))
    return out


def score_frame(
    score: PerceptionScore, truth: Percept, found: Percept, scenario: Scenario, gate: float
) -> None:
    """Add one frame's comparison to ``score``."""
    cars = truth.detections
    visible = [in_view(t, scenario) for t in cars]
    pairs = match(cars, found.detections, gate)
    for tally, keep in ((score.all_cars, lambda d: True), (score.ahead, _is_ahead)):
        tally.truth += sum(keep(t) for t, seen in zip(cars, visible, strict=True) if seen)
        tally.detected += sum(keep(d) for d in found.detections)
        for i, j in pairs:
            t, d = cars[i], found.detections[j]
            tally.detections_true += keep(d)
            if keep(t) and visible[i]:
                tally.truth_found += 1
                tally.position_errors.append(math.hypot(t.x - d.x, t.y - d.y))
                tally.speed_errors.append(math.hypot(t.vx - d.vx, t.vy - d.vy))
    score.frames += 1
    if truth.lanes and found.lanes and truth.ego_lane >= 0 and found.ego_lane >= 0:
        _, d_true = project(truth.lanes[truth.ego_lane].centerline, np.zeros(2))
        _, d_found = project(found.lanes[found.ego_lane].centerline, np.zeros(2))
        score.lane_errors.append(abs(d_true - d_found))
        score.heading_errors.append(
            abs(
                _path_heading(truth.lanes[truth.ego_lane].centerline)
                - _path_heading(found.lanes[found.ego_lane].centerline)
            )
        )


def _is_ahead(det: Detection) -> bool:
    return 0.0 < det.x <= AHEAD_RANGE_M


def _path_heading(line: np.ndarray) -> float:
    """Heading [rad] of a centre line near the ego car (its segment nearest x = 0)."""
    k = int(np.clip(np.searchsorted(line[:, 0], 0.0), 1, len(line) - 1))
    d = line[k] - line[k - 1]
    return math.atan2(d[1], d[0])


def measure(
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    driver: str = "modular-oracle",
    workers: int = 1,
    gate: float = 2.5,
    progress: bool | str = False,
) -> PerceptionScore:
    """Drive ``driver`` on ``seeds`` and score the vision perception on every frame."""
    VisionPerception.check_supported(scenario)
    oracle = OraclePerception()
    visions: dict[int, VisionPerception] = {}  # one per slot: vision remembers the last steps
    score = PerceptionScore()
    agent = make_agent(driver, scenario)

    def on_step(event: StepEvent) -> None:
        vision = visions.setdefault(event.slot, VisionPerception(scenario))
        if event.step == 0:
            vision.reset()
        truth = oracle.perceive(event.obs, event.info)
        found = vision.perceive(event.obs, {"metrics": event.info["metrics"]})
        score_frame(score, truth, found, scenario, gate)

    try:
        for _ in iter_episodes(
            agent, scenario, seeds, workers=workers, on_step=on_step, progress=progress
        ):
            pass
    finally:
        agent.close()
    return score


def format_score(score: PerceptionScore) -> str:
    """The printed table."""
    lines = [
        f"{'subset':<22}{'truth':>7}{'found':>7}{'precision':>22}{'recall':>22}"
        f"{'pos err m':>11}{'speed err m/s':>15}"
    ]
    for name, tally in (
        ("all cars in view", score.all_cars),
        (f"ahead 0-{AHEAD_RANGE_M:.0f} m", score.ahead),
    ):
        r = tally.row()
        lines.append(
            f"{name:<22}{r['truth']:>7}{r['detections']:>7}"
            f"{_rate(r['precision'], r['precision_ci']):>22}"
            f"{_rate(r['recall'], r['recall_ci']):>22}"
            f"{r['position_error_m']:>11.2f}{r['speed_error_mps']:>15.2f}"
        )
    lines.append(
        f"ego lane centre error {_mean(score.lane_errors):.2f} m, "
        f"heading error {math.degrees(_mean(score.heading_errors)):.2f} deg "
        f"over {score.frames} frames"
    )
    return "\n".join(lines)


def _rate(value: float, ci: tuple[float, float] | None) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


@dataclass
class PerceptionRequest:
    """What ``driving perception`` runs.

    Attributes:
        scenario: the scenario name.
        overrides: its overrides.
        episodes: how many episodes (None: all of ``seeds``).
        seeds: a seed range ``"A:B"`` (None: the held-out evaluation range).
        driver: the agent spec that drives while frames are scored.
        workers: parallel environments.
        gate: largest matching distance [m].
        progress: show a progress bar.
    """

    scenario: str = "highway"
    overrides: dict[str, object] | None = None
    episodes: int | None = None
    seeds: str | None = None
    driver: str = "modular-oracle"
    workers: int = 1
    gate: float = 2.5
    progress: bool = True


def run_perception(request: PerceptionRequest) -> str:
    """Measure and return the printed report (a header line and :func:`format_score`)."""
    if not request.gate > 0:
        raise UserError(f"--gate must be > 0 m, got {request.gate}")
    scenario = get_scenario(request.scenario).with_overrides(request.overrides or {})
    seeds = evaluation_seeds(scenario, request.episodes, request.seeds)
    score = measure(
        scenario,
        seeds,
        driver=request.driver,
        workers=request.workers,
        gate=request.gate,
        progress="perception" if request.progress else False,
    )
    header = (
        f"vision perception on {scenario.name}: {len(seeds)} episodes, {score.frames} frames, "
        f"driver {request.driver}"
    )
    return f"{header}\n{format_score(score)}"
