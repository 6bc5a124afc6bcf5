"""argparse with one-line errors, shared by every subcommand."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from envs.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def add_episode_arguments(parser: argparse.ArgumentParser, seeds_help: str) -> None:
    """``--scenario``, ``--episodes``, ``--seeds`` and ``--workers``, shared by the commands
    that drive episodes."""
    from envs.scenarios import SCENARIOS

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


def apply_flags(config: Any, args: argparse.Namespace, names: Sequence[str]) -> None:
    """Set each of ``names`` on ``config`` from ``args`` where the flag was given (not None)."""
    for name in names:
        value = getattr(args, name)
        if value is not None:
            setattr(config, name, value)


def require_positive_ints(config: Any, path: Any, names: Sequence[str]) -> None:
    """A config file's ``names`` must be integers >= 1 (a :class:`UserError` names the key)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"config {path}: {name} must be a positive integer, got {value!r}")


def require_bools(config: Any, path: Any, names: Sequence[str]) -> None:
    """A config file's ``names`` must be true or false (a :class:`UserError` names the key)."""
    for name in names:
        if not isinstance(getattr(config, name), bool):
            raise UserError(f"config {path}: {name} must be true or false")


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


def load_overrides(value: dict[str, Any] | None, path: str | None) -> dict[str, Any]:
    """Merge ``--overrides-file`` (YAML or JSON) under ``--overrides`` (JSON)."""
    merged: dict[str, Any] = {}
    if path:
        import yaml

        try:
            with open(path) as fh:
                loaded = yaml.safe_load(fh) or {}
        except OSError as exc:
            raise UserError(f"cannot read overrides file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise UserError(f"overrides file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise UserError(f"overrides file {path} must hold a mapping")
        merged.update(loaded)
    merged.update(value or {})
    return merged
