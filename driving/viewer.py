"""Seeing an agent drive, live in a window or recorded to video (``driving watch``).

The view (see :mod:`driving.overlay`) shows highway-env's rendering of the scene, the agent's
own pixels with its ``explain()`` drawn on them (detections and reference path of the modular
agent, the saliency map of the CNN), the action taken and the expert's action for the same
frame. The agent's pixels are its observation as given, the scenario's sensor nuisances
(:mod:`envs.nuisances`) included and named in the text panel; the simulator's rendering is
clean. Live keys: space pauses, ``n`` steps one decision while paused, ``r`` restarts the
episode, ``q`` or Esc quits; the window tells the rollout loop through a
:class:`~driving.rollout.Signal`. Recording renders the same view headless into an mp4.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent
from agents.registry import make_agent
from driving.overlay import compose_view
from driving.rollout import Signal, StepEvent, iter_episodes
from driving.video import check_video_path, write_video
from envs.errors import UserError
from envs.nuisances import scenario_nuisances
from envs.scenarios import Scenario, get_scenario


class LiveWindow:
    """A pygame window that shows watch frames at a given rate and reads the keys.

    ``last_shown`` holds the last frame as read back from the window's surface.
    """

    def __init__(self, fps: float, title: str) -> None:
        import pygame

        self.pygame = pygame
        pygame.display.init()
        pygame.display.set_caption(title)
        self.title = title
        self.screen = None
        self.last_shown: np.ndarray | None = None
        self.period = 1.0 / fps
        self.paused = False
        self.last = 0.0

    def show(self, frame: np.ndarray) -> Signal | None:
        """Display ``frame`` ``(H, W, 3)`` RGB, then honour the pause and step keys; return
        :attr:`Signal.RESTART` or :attr:`Signal.STOP` when the user asks for it."""
        pg = self.pygame
        size = (frame.shape[1], frame.shape[0])
        # highway-env's viewer calls pygame.quit() when an environment closes: reopen if so.
        if not pg.display.get_init() or pg.display.get_surface() is None:
            pg.display.init()
            pg.display.set_caption(self.title)
            self.screen = None
        if self.screen is None or self.screen.get_size() != size:
            self.screen = pg.display.set_mode(size)
        pg.surfarray.blit_array(self.screen, np.ascontiguousarray(frame.swapaxes(0, 1)))
        pg.display.flip()
        self.last_shown = pg.surfarray.array3d(self.screen).swapaxes(0, 1).copy()
        step_once = False
        while True:
            for event in pg.event.get():
                if event.type == pg.QUIT:
                    return Signal.STOP
                if event.type == pg.KEYDOWN:
                    if event.key in (pg.K_q, pg.K_ESCAPE):
                        return Signal.STOP
                    if event.key == pg.K_r:
                        return Signal.RESTART
                    if event.key == pg.K_SPACE:
                        self.paused = not self.paused
                    if event.key in (pg.K_n, pg.K_RIGHT):
                        step_once = True
            if not self.paused or step_once:
                break
            time.sleep(0.02)
        wait = self.period - (time.perf_counter() - self.last)
        if wait > 0 and not self.paused:
            time.sleep(wait)
        self.last = time.perf_counter()
        return None

    def close(self) -> None:
        if self.pygame.display.get_init():
            self.pygame.display.quit()


def watch(
    agent: Agent,
    scenario: Scenario,
    seeds: Sequence[int],
    *,
    expert: Agent | None = None,
    record: Path | None = None,
    fps: float | None = None,
    snapshot: Path | None = None,
) -> int:
    """Drive ``agent`` on ``seeds``, live or into the video ``record``; returns frames shown.

    ``snapshot``: with a live window, save what the window shows at the end as a PNG.
    """
    fps = fps or float(scenario.policy_frequency)
    nuisances = scenario_nuisances(scenario.overrides)
    notes = [f"nuisance: {', '.join(str(n) for n in nuisances)}"] if nuisances else []
    frames: list[np.ndarray] = []
    window = None if record else LiveWindow(fps, f"driving watch: {agent.name}")

    def on_step(event: StepEvent) -> Signal | None:
        view = compose_view(
            event.env.render(),
            event.obs,
            scenario.observation,
            action=event.action,
            expert_action=event.expert_action,
            action_names=scenario.action.names,
            explanation=event.explanation,
            title=f"{agent.name} on {scenario.name}",
            step=event.step,
            seed=event.seed,
            notes=notes,
        )
        if window is None:
            frames.append(view)
            return None
        shown[0] += 1
        return window.show(view)

    shown = [0]
    try:
        for _ in iter_episodes(
            agent, scenario, seeds, expert=expert, on_step=on_step, render_mode="rgb_array"
        ):
            pass
    finally:
        if window is not None:
            if snapshot is not None and (image := window.last_shown) is not None:
                import imageio.v2 as imageio

                imageio.imwrite(snapshot, image)
            window.close()
    if record is not None:
        return write_video(record, frames, fps)
    return shown[0]


@dataclass
class WatchRequest:
    """What ``driving watch`` runs.

    Attributes:
        agent: the agent spec.
        scenario: the scenario name.
        overrides: its overrides.
        seed: the first episode seed (None: the first held-out seed).
        episodes: episodes to show, one after the other.
        expert: the agent whose action is shown beside the agent's (None: none).
        record: write an mp4 here instead of opening a window.
        fps: frames per second (None: real time).
        snapshot: live mode: save what the window shows at the end as a PNG.
    """

    agent: str
    scenario: str = "highway"
    overrides: dict[str, Any] | None = None
    seed: int | None = None
    episodes: int = 1
    expert: str | None = "modular-oracle"
    record: Path | None = None
    fps: float | None = None
    snapshot: Path | None = None


def run_watch(request: WatchRequest, default_expert: str | None = None) -> str:
    """Show (or record) the episodes; return the line to print.

    An ``expert`` equal to ``default_expert`` that cannot drive this scenario is left out with
    a warning instead of failing (the user did not ask for it).
    """
    scenario = get_scenario(request.scenario).with_overrides(request.overrides)
    if request.seed is not None and request.seed < 0:
        raise UserError(f"--seed must be >= 0, got {request.seed}")
    if request.fps is not None and not (math.isfinite(request.fps) and request.fps > 0):
        raise UserError(f"--fps must be a positive number, got {request.fps!r}")
    if request.record is not None:
        check_video_path(request.record, "--record")
    first = scenario.evaluation_seeds.start if request.seed is None else request.seed
    seeds = list(range(first, first + request.episodes))
    agent = make_agent(request.agent, scenario)
    expert = None
    if request.expert is not None:
        try:
            expert = make_agent(request.expert, scenario)
        except UserError as exc:
            if request.expert != default_expert:
                raise
            print(f"driving watch: no expert shown ({exc})", file=sys.stderr)
    if request.record is None and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise UserError(
            "no display for a live window; use --record out.mp4 (or run under xvfb-run)"
        )
    n = watch(
        agent,
        scenario,
        seeds,
        expert=expert,
        record=request.record,
        fps=request.fps,
        snapshot=request.snapshot,
    )
    return f"wrote {request.record} ({n} frames)" if request.record else f"showed {n} frames"
