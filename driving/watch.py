"""``driving watch``: see an agent drive, live in a window or recorded to video.

The view (see :mod:`driving.overlay`) shows highway-env's rendering of the scene, the agent's
own pixels with its ``explain()`` drawn on them (detections and reference path of the modular
agent, the saliency map of the CNN), the action taken and the expert's action for the same
frame. Live keys: space pauses, ``n`` steps one decision while paused, ``r`` restarts the
episode, ``q`` or Esc quits. ``--record out.mp4`` renders the same view headless.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.base import Agent
from agents.registry import make_agent
from driving.argparse_util import ArgumentParser, json_object, positive_int
from driving.overlay import compose_view
from driving.rollout import StepEvent, iter_episodes
from driving.video import write_video
from envs.errors import UserError
from envs.scenarios import SCENARIOS, Scenario, get_scenario


class _Restart(Exception):
    """The user asked to restart the episode."""


class _Quit(Exception):
    """The user closed the window or pressed q."""


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

    def show(self, frame: np.ndarray) -> None:
        """Display ``frame`` ``(H, W, 3)`` RGB, then honour pause/step/restart/quit keys."""
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
                    raise _Quit
                if event.type == pg.KEYDOWN:
                    if event.key in (pg.K_q, pg.K_ESCAPE):
                        raise _Quit
                    if event.key == pg.K_r:
                        raise _Restart
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
    frames: list[np.ndarray] = []
    window = None if record else LiveWindow(fps, f"driving watch: {agent.name}")

    def on_step(event: StepEvent) -> None:
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
        )
        if window is None:
            frames.append(view)
        else:
            window.show(view)
            frames_shown.append(1)

    frames_shown: list[int] = []
    try:
        pending = list(seeds)
        while pending:
            try:
                for _ in iter_episodes(
                    agent,
                    scenario,
                    pending[:1],
                    expert=expert,
                    on_step=on_step,
                    render_mode="rgb_array",
                ):
                    pending.pop(0)
            except _Restart:
                continue
    except _Quit:
        pass
    finally:
        if window is not None:
            if snapshot is not None and (image := window.last_shown) is not None:
                import imageio.v2 as imageio

                imageio.imwrite(snapshot, image)
            window.close()
    if record is not None:
        return write_video(record, frames, fps)
    return len(frames_shown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="driving watch", description=__doc__)
    parser.add_argument(
        "--agent",
        required=True,
        help="agent spec: random, keep-lane, idm, modular-oracle, modular-vision, cnn:PATH",
    )
    parser.add_argument("--scenario", default="highway", help=f"one of {', '.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, help="first episode seed (default: first held-out)")
    parser.add_argument("--episodes", type=positive_int, default=1, help="episodes to show")
    parser.add_argument(
        "--expert",
        default="modular-oracle",
        help="agent whose action is shown beside the agent's ('none' for none)",
    )
    parser.add_argument("--overrides", type=json_object, help="scenario overrides (JSON)")
    parser.add_argument("--record", type=Path, help="write an mp4 here instead of a live window")
    parser.add_argument("--fps", type=float, help="frames per second (default: real time)")
    parser.add_argument(
        "--snapshot", type=Path, help="live mode: save what the window shows at the end as a PNG"
    )
    args = parser.parse_args(argv)
    scenario = get_scenario(args.scenario).with_overrides(args.overrides)
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    first = scenario.evaluation_seeds.start if args.seed is None else args.seed
    seeds = list(range(first, first + args.episodes))
    agent = make_agent(args.agent, scenario)
    expert = None
    if args.expert.lower() != "none":
        try:
            expert = make_agent(args.expert, scenario)
        except UserError as exc:
            if args.expert != parser.get_default("expert"):
                raise
            print(f"driving watch: no expert shown ({exc})", file=sys.stderr)
    if args.record is None:
        import os

        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise UserError(
                "no display for a live window; use --record out.mp4 (or run under xvfb-run)"
            )
    n = watch(
        agent,
        scenario,
        seeds,
        expert=expert,
        record=args.record,
        fps=args.fps,
        snapshot=args.snapshot,
    )
    if args.record is not None:
        print(f"wrote {args.record} ({n} frames)")
    else:
        print(f"showed {n} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
