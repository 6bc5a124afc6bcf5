"""``driving watch``: watch an agent drive, live in a window or recorded to video.

The view shows highway-env's rendering of the scene, the agent's own pixels with its
``explain()`` drawn on them (detections and reference path of the modular agent, the saliency
map of the CNN), the action taken and the expert's action for the same frame. Live keys: space
pauses, ``n`` steps one decision while paused, ``r`` restarts the episode, ``q`` or Esc quits.
``--record out.mp4`` renders the same view headless.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from driving.commands._args import ArgumentParser, json_object, positive_float, positive_int
from driving.viewer import WatchRequest, run_watch
from envs.scenarios import SCENARIOS

DEFAULT_EXPERT = "modular-oracle"


def build_parser() -> ArgumentParser:
    """The ``driving watch`` argument parser."""
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
        default=DEFAULT_EXPERT,
        help="agent whose action is shown beside the agent's ('none' for none)",
    )
    parser.add_argument("--overrides", type=json_object, help="scenario overrides (JSON)")
    parser.add_argument("--record", type=Path, help="write an mp4 here instead of a live window")
    parser.add_argument("--fps", type=positive_float, help="frames per second (default: real time)")
    parser.add_argument(
        "--snapshot", type=Path, help="live mode: save what the window shows at the end as a PNG"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``driving watch``: returns the exit status."""
    args = build_parser().parse_args(argv)
    request = WatchRequest(
        agent=args.agent,
        scenario=args.scenario,
        overrides=args.overrides,
        seed=args.seed,
        episodes=args.episodes,
        expert=None if args.expert.lower() == "none" else args.expert,
        record=args.record,
        fps=args.fps,
        snapshot=args.snapshot,
    )
    print(run_watch(request, default_expert=DEFAULT_EXPERT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
