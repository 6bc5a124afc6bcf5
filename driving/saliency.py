"""Where the CNN looks when it fails (``driving saliency``; issue 21's debuggability column).

A CNN checkpoint drives held-out episodes; at every decision its VisualBackProp saliency map
(Bojarski et al. 2016, :func:`agents.networks.visual_backprop`) of the observation is split over
what the newest frame shows, pixel by pixel:

- ``other vehicles`` and ``ego car``: the renderer's car bodies, outlines and lights
  (grey levels :data:`~agents.modular.restoration.CAR_BAND` and
  :data:`~agents.modular.restoration.OUTLINE_LEVEL`); the ego car is the connected blob at the
  image's ego position (a car touching it in a collision joins it);
- ``lane markings``: the marking grey (at least :data:`~agents.modular.vision.MARKING_LEVEL`);
- ``background``: the rest. highway-env draws no road surface: the road and the land beside it
  are the same grey, so the network (like modular-vision) knows the road only by its markings.

The classes come from the clean frame's palette, so the scenario must be driven without sensor
nuisances. A frame's share of a class is the saliency mass on its pixels over the frame's whole
mass; its area share is the class's fraction of the pixels (what a uniform map would give).
Each episode gives one figure per class: the mean over all its frames when it completed, over
its last ``window_s`` seconds when it failed, grouped by how it failed (collided; left the road;
neither, e.g. stopped until the time limit). The intervals are Student t over episodes (frames
of one episode are not independent). Each failure's last frame is also drawn with its saliency
(``failure_<seed>.png``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from agents.cnn_agent import make_cnn_agent
from agents.modular.restoration import CAR_BAND, OUTLINE_LEVEL
from agents.modular.vision import MARKING_LEVEL
from driving.files import atomic_write_text, check_output_location
from driving.metrics import episode_metrics
from driving.overlay import draw_inset
from driving.rollout import StepEvent, iter_episodes
from driving.seeds import evaluation_seeds
from driving.stats import format_ci, summarize
from driving.versions import package_versions
from envs.errors import UserError
from envs.nuisances import scenario_nuisances
from envs.scenarios import Scenario, get_scenario
from envs.spec import ObservationSpec

CLASSES = ("other vehicles", "ego car", "lane markings", "background")
"""The pixel classes of a frame, in the order of :func:`pixel_classes`' channels."""
OUTCOMES = ("completed", "collided", "left the road", "other failure")
"""How an episode ended, in the report's column order."""


def pixel_classes(frame: np.ndarray, spec: ObservationSpec) -> np.ndarray:
    """The :data:`CLASSES` masks of one clean grayscale frame ``(H, W)`` uint8: ``(4, H, W)``
    bool, exactly one class per pixel."""
    vehicles = ((frame >= CAR_BAND[0]) & (frame < CAR_BAND[1])) | (frame == OUTLINE_LEVEL)
    markings = (frame >= MARKING_LEVEL) & ~vehicles
    _, labels = cv2.connectedComponents(vehicles.astype(np.uint8), connectivity=8)
    cx = round(spec.centering[0] * spec.width)
    cy = round(spec.centering[1] * spec.height)
    window = labels[max(cy - 2, 0) : cy + 3, max(cx - 2, 0) : cx + 3]
    found = window[window > 0]
    ego = labels == np.bincount(found).argmax() if found.size else np.zeros_like(vehicles)
    others = vehicles & ~ego
    return np.stack([others, ego, markings, ~(vehicles | markings)])


def class_shares(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Saliency mass per class over the total: ``(H, W)`` map, ``(K, H, W)`` masks -> ``(K,)``
    summing to 1 (the area shares when the map is flat zero)."""
    total = float(saliency.sum())
    if total <= 0:
        return masks.reshape(len(masks), -1).mean(axis=1)
    return np.array([float(saliency[m].sum()) / total for m in masks])


def outcome(row: dict[str, float]) -> str:
    """The :data:`OUTCOMES` entry of an episode's metrics row."""
    if row["completed"] > 0.5:
        return "completed"
    if row["collided"] > 0.5:
        return "collided"
    if row["offroad_time_s"] > 0:
        return "left the road"
    return "other failure"


@dataclass
class SaliencyRequest:
    """What ``driving saliency`` runs.

    Attributes:
        checkpoint: the CNN policy checkpoint.
        out: the output folder (``report.md``, ``saliency.json``, failure pictures).
        scenario, overrides: the scenario (no sensor nuisances).
        episodes: how many episodes (the first ones of ``seeds``).
        seeds: a seed range ``"A:B"`` (None: the held-out evaluation range).
        window_s: seconds before a failure whose frames count [s].
        images: how many failures to draw (the first ones by seed).
        progress: show a progress bar.
    """

    checkpoint: str
    out: str
    scenario: str = "highway"
    overrides: dict[str, object] | None = None
    episodes: int = 100
    seeds: str | None = None
    window_s: float = 2.0
    images: int = 6
    progress: bool = True


@dataclass
class SaliencyResult:
    """Per-episode class shares of one run, by outcome.

    Attributes:
        area: ``{outcome: {class: [per episode]}}`` area shares of the frames that count.
        shares: ``{outcome: {class: [per episode]}}`` saliency shares of the same frames.
        seeds: ``{outcome: [seeds]}``.
        pictures: the failure pictures drawn (file names in the output folder).
    """

    area: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    shares: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    seeds: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    pictures: list[str] = field(default_factory=list)

    def add(self, kind: str, seed: int, area: np.ndarray, shares: np.ndarray) -> None:
        """Record one episode of outcome ``kind``: ``(len(CLASSES),)`` area and saliency
        shares."""
        for i, name in enumerate(CLASSES):
            self.area[kind][name].append(float(area[i]))
            self.shares[kind][name].append(float(shares[i]))
        self.seeds[kind].append(seed)

    def markdown(self) -> list[str]:
        """The report's table: per outcome, the saliency share [95% CI] and the area share."""
        kinds = [k for k in OUTCOMES if self.seeds.get(k)]
        header = ["class", *(f"{k} ({len(self.seeds[k])} ep.)" for k in kinds)]
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for name in CLASSES:
            cells = [
                f"{format_ci(summarize(self.shares[k][name], rate=False), 3)} "
                f"(area {np.mean(self.area[k][name]):.3f})"
                for k in kinds
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return lines


def measure_saliency(
    checkpoint: str,
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    window_s: float,
    images: int,
    out: Path,
    progress: bool | str = False,
) -> SaliencyResult:
    """Drive ``checkpoint`` on ``seeds`` in this process and split its saliency per class (see
    the module docstring); draw the last frame of the first ``images`` failures into ``out``."""
    spec = scenario.observation
    agent = make_cnn_agent(scenario, checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    window = max(1, round(window_s * scenario.policy_frequency))
    steps: list[tuple[np.ndarray, np.ndarray]] = []  # (area, shares) of each decision so far
    last: list[tuple[np.ndarray, np.ndarray]] = []  # the newest (observation, saliency)
    result = SaliencyResult()

    def on_step(event: StepEvent) -> None:  # one environment: the episodes run one by one
        saliency = agent.saliency(event.obs[None])[0]
        masks = pixel_classes(event.obs[-1], spec)
        steps.append((masks.reshape(len(masks), -1).mean(axis=1), class_shares(saliency, masks)))
        last[:] = [(event.obs, saliency)]

    try:
        for episode in iter_episodes(
            agent, scenario, seeds, workers=1, on_step=on_step, progress=progress
        ):
            kind = outcome(episode_metrics(episode))
            kept = steps if kind == "completed" else steps[-window:]
            areas = np.mean([a for a, _ in kept], axis=0)
            shares = np.mean([s for _, s in kept], axis=0)
            result.add(kind, episode.seed, areas, shares)
            if kind != "completed" and len(result.pictures) < images:
                obs, saliency = last[0]
                picture = draw_inset(obs, spec, {"saliency": saliency})
                name = f"failure_{episode.seed}.png"
                cv2.imwrite(str(out / name), picture[:, :, ::-1])
                result.pictures.append(name)
            steps.clear()
    finally:
        agent.close()
    return result


def run_saliency(request: SaliencyRequest) -> str:
    """Measure, write ``report.md`` and ``saliency.json`` into ``request.out``; return the
    report's text."""
    scenario = get_scenario(request.scenario).with_overrides(request.overrides or {})
    if scenario_nuisances(scenario.overrides):
        raise UserError(
            "driving saliency classes pixels by the renderer's clean palette: drive the scenario "
            "without sensor nuisances"
        )
    if scenario.observation.kind != "gray":
        raise UserError("driving saliency needs the grayscale observation (kind: gray)")
    if not request.window_s > 0:
        raise UserError(f"--window must be > 0 s, got {request.window_s}")
    if request.images < 0:
        raise UserError(f"--images must be >= 0, got {request.images}")
    out = Path(request.out)
    check_output_location(out, "--out")
    seeds = evaluation_seeds(scenario, request.episodes, request.seeds)
    result = measure_saliency(
        request.checkpoint,
        scenario,
        seeds,
        window_s=request.window_s,
        images=request.images,
        out=out,
        progress="saliency" if request.progress else False,
    )
    lines = [
        f"# Where the CNN looks: {scenario.name}",
        "",
        f"Checkpoint: `{request.checkpoint}`; {len(seeds)} episodes, seeds {seeds[0]}-{seeds[-1]}; "
        f"failures: the last {request.window_s:g} s; completed episodes: every frame.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in package_versions().items()),
        "",
        "Share of the VisualBackProp saliency mass on each class of pixels of the newest frame, "
        "mean [95% CI] over episodes, and in brackets the class's share of the pixels (what a "
        "uniform map would give).",
        "",
        *result.markdown(),
        "",
        *(f"![{name}]({name})" for name in result.pictures),
        "",
    ]
    text = "\n".join(lines)
    atomic_write_text(out / "report.md", text)
    data = {
        "checkpoint": request.checkpoint,
        "scenario": scenario.name,
        "seeds": [int(s) for s in seeds],
        "window_s": request.window_s,
        "area": result.area,
        "shares": result.shares,
        "outcome_seeds": result.seeds,
    }
    atomic_write_text(out / "saliency.json", json.dumps(data, indent=1))
    return text
