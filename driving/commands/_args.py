"""argparse with one-line errors and the arguments shared by the commands (not a command)."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from driving.files import atomic_write_text
from envs.scenarios import SCENARIOS


class ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def add_episode_arguments(parser: argparse.ArgumentParser, seeds_help: str) -> None:
    """``--scenario``, ``--episodes``, ``--seeds`` and ``--workers``, shared by the commands
    that drive episodes."""
    parser.add_argument(
        "--scenario", default="highway", help=f"scenario name ({', '.join(SCENARIOS)})"
    )
    parser.add_argument("--episodes", type=positive_int, help="number of episodes")
    parser.add_argument("--seeds", help=seeds_help)
    parser.add_argument(
        "--workers", type=positive_int, default=1, help="parallel environments (subprocesses)"
    )


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """``--overrides JSON`` and ``--overrides-file PATH`` (merged by :func:`load_overrides`)."""
    parser.add_argument(
        "--overrides",
        type=json_object,
        help="highway-env config overrides as JSON, e.g. '{\"vehicles_count\": 20}'",
    )
    parser.add_argument("--overrides-file", help="YAML/JSON file of overrides")


def add_recipe_arguments(parser: argparse.ArgumentParser, fresh_help: str) -> None:
    """``--config`` (required) and the flags that override a compare or curve recipe's
    ``episodes``, ``workers``, ``out`` and ``fresh`` (see :func:`apply_flags`)."""
    parser.add_argument("--config", required=True, type=Path, help="the YAML recipe")
    parser.add_argument("--episodes", type=positive_int, help="override held-out episodes")
    parser.add_argument("--workers", type=positive_int, help="override workers")
    parser.add_argument("--out", help="override the output folder")
    parser.add_argument("--fresh", action="store_true", default=None, help=fresh_help)


def add_fast_argument(parser: argparse.ArgumentParser) -> None:
    """``--fast/--no-fast``: the accelerated simulation (default: the project default)."""
    parser.add_argument(
        "--fast",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use the accelerated simulation (default: the project default)",
    )


def apply_flags(config: Any, args: argparse.Namespace, names: Sequence[str]) -> None:
    """Set each of ``names`` on ``config`` from ``args`` where the flag was given (not None)."""
    for name in names:
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)


def add_worker_counts_argument(parser: argparse.ArgumentParser) -> None:
    """``--counts 1 2 ...``: the worker counts a benchmark measures side by side."""
    parser.add_argument(
        "--counts",
        type=positive_int,
        nargs="+",
        default=[1, 2],
        help="worker counts measured side by side, speed-ups over the first (default 1 2; on a "
        "16-core machine e.g. 1 4 8 16)",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def json_object(text: str) -> dict[str, Any]:
    """argparse type: a JSON object, e.g. ``'{"vehicles_count": 20}'``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def command_line(name: str, argv: Sequence[str] | None) -> str:
    """``"driving NAME ARGS"`` as the user typed it (for reports)."""
    args = list(argv if argv is not None else sys.argv[2:])
    return f"driving {name} {shlex.join(args)}".strip()


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (a ``--json`` flag; nothing when None)."""
    if path is not None:
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
