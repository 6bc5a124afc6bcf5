"""``driving demo``: the README's first command.

Evaluates every available agent on the same held-out seeds of a small highway scenario and
prints the comparison table (mean [95% CI] over the episodes).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents.registry import make_agent
from driving.argparse_util import ArgumentParser, json_object, positive_int
from driving.comparison_table import comparison_markdown, print_comparison
from driving.evaluate import evaluate_agent, write_evaluation
from envs.errors import UserError
from envs.scenarios import get_scenario

DEMO_OVERRIDES = {"vehicles_count": 30, "duration": 20}
"""A lighter highway for the demo: 30 cars, 20 s episodes."""
DEMO_AGENTS = ("idm", "modular-oracle", "modular-vision", "keep-lane", "random")


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="driving demo", description=__doc__)
    parser.add_argument("--episodes", type=positive_int, default=10, help="held-out episodes")
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel environments")
    parser.add_argument(
        "--overrides", type=json_object, default=DEMO_OVERRIDES, help="scenario overrides (JSON)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    args = parser.parse_args(argv)
    scenario = get_scenario("highway").with_overrides(args.overrides)
    seeds = scenario.evaluation_seeds.first(args.episodes)
    started = time.perf_counter()
    summaries = []
    for spec in DEMO_AGENTS:
        try:
            agent = make_agent(spec, scenario)
        except UserError as exc:
            print(f"demo: skipping {spec}: {exc}", file=sys.stderr)
            continue
        evaluation = evaluate_agent(
            agent, scenario, seeds, workers=args.workers, progress=f"evaluate {spec}"
        )
        write_evaluation(evaluation, args.out / spec)
        summaries.append(evaluation.summary)
    title = (
        f"highway {args.overrides}, held-out seeds {seeds[0]}..{seeds[-1]}: mean [95% CI], "
        f"{time.perf_counter() - started:.0f} s"
    )
    print_comparison(summaries, title)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.md").write_text(
        f"# Demo comparison\n\n{title}\n\n" + comparison_markdown(summaries) + "\n"
    )
    print(f"wrote {args.out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
