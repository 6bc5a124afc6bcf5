"""The watch view: the simulator's picture, the agent's pixels and what the agent explains.

:func:`compose_view` draws one frame ``(H, W, 3)`` uint8 RGB from:

- the simulator's own rendering (``env.render()``), on top;
- the newest frame of the agent's observation, enlarged, with the agent's ``explain()`` drawn
  on it: ``detections`` (boxes), ``reference_path`` (a line) and ``saliency`` (a heat map),
  all in the observation's geometry (ego frame metres -> pixels with the observation's scaling
  and centring);
- a text panel: step, seed, the action taken, the expert's action for the same frame, any
  ``notes`` (e.g. the sensor nuisances the observation went through), the decision and target
  speed when the agent explains them.

The inset is the observation the agent was given, so it shows the scenario's sensor nuisances
(:mod:`envs.nuisances`); the simulator's picture above it is clean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from envs.spec import ObservationSpec

INSET_ZOOM = 3
"""Enlargement of the observation inset."""
PANEL_WIDTH = 330
"""Width [px] of the text panel."""


def ego_to_pixels(points: np.ndarray, spec: ObservationSpec, zoom: int = 1) -> np.ndarray:
    """Ego-frame points ``(K, 2)`` [m] (x forward, y right) -> observation pixels ``(K, 2)``."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    cx, cy = spec.centering[0] * spec.width, spec.centering[1] * spec.height
    u = (cx + points[:, 0] * spec.scaling) * zoom
    v = (cy + points[:, 1] * spec.scaling) * zoom
    return np.stack([u, v], axis=1)


def _newest_frame(obs: np.ndarray, spec: ObservationSpec) -> np.ndarray:
    if spec.kind == "rgb":
        return np.moveaxis(obs[-3:], 0, -1)
    return np.repeat(obs[-1][..., None], 3, axis=-1)


def _xy(det: Any) -> tuple[float, float, float, float] | None:
    if isinstance(det, dict):
        pos = det.get("position", (det.get("x"), det.get("y")))
        size = det.get("size", (det.get("length", 5.0), det.get("width", 2.0)))
    else:
        pos = (getattr(det, "x", None), getattr(det, "y", None))
        if hasattr(det, "position"):
            pos = det.position
        size = (getattr(det, "length", 5.0), getattr(det, "width", 2.0))
    if pos is None or pos[0] is None:
        return None
    return float(pos[0]), float(pos[1]), float(size[0]), float(size[1])


def draw_inset(obs: np.ndarray, spec: ObservationSpec, explanation: dict[str, Any]) -> np.ndarray:
    """The enlarged newest observation frame with detections, reference path and saliency."""
    frame = _newest_frame(obs, spec)
    big = cv2.resize(
        frame, (spec.width * INSET_ZOOM, spec.height * INSET_ZOOM), interpolation=cv2.INTER_NEAREST
    )
    saliency = explanation.get("saliency")
    if saliency is not None:
        sal = np.asarray(saliency, dtype=np.float32)
        sal = cv2.resize(sal, (big.shape[1], big.shape[0]))
        sal = (255 * (sal - sal.min()) / max(float(np.ptp(sal)), 1e-6)).astype(np.uint8)
        heat = cv2.cvtColor(cv2.applyColorMap(sal, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        big = cv2.addWeighted(big, 0.55, heat, 0.45, 0)
    path = explanation.get("reference_path")
    if path is not None and len(path):
        pts = ego_to_pixels(np.asarray(path), spec, INSET_ZOOM).round().astype(np.int32)
        cv2.polylines(big, [pts], False, (0, 220, 0), 2)
    for det in explanation.get("detections", []) or []:
        xy = _xy(det)
        if xy is None:
            continue
        x, y, length, width = xy
        (u0, v0), (u1, v1) = (
            ego_to_pixels(
                np.array([[x - length / 2, y - width / 2], [x + length / 2, y + width / 2]]),
                spec,
                INSET_ZOOM,
            )
            .round()
            .astype(int)
        )
        cv2.rectangle(big, (u0, v0), (u1, v1), (255, 60, 60), 2)
    return big


def _fmt(action: np.ndarray | None, names: tuple[str, ...]) -> str:
    if action is None:
        return "-"
    return "  ".join(f"{n} {float(a):+.2f}" for n, a in zip(names, np.ravel(action), strict=False))


def draw_panel(lines: list[str], height: int) -> np.ndarray:
    """A dark text panel ``(height, PANEL_WIDTH, 3)``."""
    panel = np.full((height, PANEL_WIDTH, 3), 30, dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(
            panel,
            line[:48],
            (8, 20 + 20 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (235, 235, 235),
            1,
            cv2.LINE_AA,
        )
    return panel


def compose_view(
    sim_rgb: np.ndarray | None,
    obs: np.ndarray,
    spec: ObservationSpec,
    *,
    action: np.ndarray,
    expert_action: np.ndarray | None,
    action_names: tuple[str, ...],
    explanation: dict[str, Any],
    title: str,
    step: int,
    seed: int,
    notes: Sequence[str] = (),
) -> np.ndarray:
    """One watch frame ``(H, W, 3)`` uint8 RGB (see the module docstring)."""
    inset = draw_inset(obs, spec, explanation)
    lines = [
        title,
        f"seed {seed}  step {step}",
        f"action: {_fmt(action, action_names)}",
        f"expert: {_fmt(expert_action, action_names)}",
        *notes,
    ]
    for key in ("decision", "target_speed", "target_lane"):
        if key in explanation:
            value = explanation[key]
            lines.append(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    lines.append("keys: space pause, n step, r restart, q quit")
    bottom_h = max(inset.shape[0], 20 + 20 * len(lines))
    bottom = np.zeros((bottom_h, inset.shape[1] + PANEL_WIDTH, 3), dtype=np.uint8)
    bottom[: inset.shape[0], : inset.shape[1]] = inset
    bottom[:, inset.shape[1] :] = draw_panel(lines, bottom_h)
    if sim_rgb is None:
        return bottom
    sim = np.asarray(sim_rgb, dtype=np.uint8)
    width = max(sim.shape[1], bottom.shape[1])
    out = np.zeros((sim.shape[0] + bottom.shape[0], width, 3), dtype=np.uint8)
    out[: sim.shape[0], : sim.shape[1]] = sim
    out[sim.shape[0] :, : bottom.shape[1]] = bottom
    return out
