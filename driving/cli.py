"""The ``driving`` command: one subcommand per job.

Each subcommand lives in its own module exposing ``main(argv: list[str]) -> int``; this module
only dispatches, so ``driving --help`` stays fast. User mistakes (:class:`envs.errors.UserError`)
are printed as one line on stderr with exit status 2, never as a traceback; a full disk is one
line with exit status 1 (what was written before stays valid: every writer writes then renames).
"""

from __future__ import annotations

import errno
import importlib
import sys
from collections.abc import Sequence

from envs.errors import UserError

COMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": (
        "driving.evaluate",
        "drive an agent on held-out seeds; write episodes.csv and summary.json",
    ),
    "collect": ("driving.collect", "record expert demonstrations into a dataset folder"),
    "data": ("driving.data_cli", "inspect a dataset: `data info DIR`, `data verify DIR`"),
    "fit": (
        "driving.train_cli",
        "train a CNN policy (LightningCLI; --config experiments/<name>.yaml)",
    ),
    "validate": ("driving.train_cli", "validate a CNN policy (LightningCLI)"),
    "test": ("driving.train_cli", "test a CNN policy (LightningCLI)"),
    "predict": ("driving.train_cli", "predict actions with a CNN policy (LightningCLI)"),
    "compare": ("driving.compare", "evaluate several agents on the same seeds; write report.md"),
    "curve": (
        "driving.curve",
        "BC vs DAgger learning curves against expert labels (collect, train, evaluate)",
    ),
    "watch": ("driving.watch", "watch an agent drive, live or recorded to video"),
    "perception": ("driving.perception_eval", "measure vision perception against ground truth"),
    "bench": (
        "driving.bench",
        "benchmarks: `bench env`, `bench sim`, `bench collect`, `bench train`",
    ),
    "demo": ("driving.demo", "collect, train, evaluate both approaches, print the comparison"),
}
"""Subcommand -> (module, one-line help)."""


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: driving <command> [options]   (driving <command> --help for its options)",
        "",
        "End-to-end CNN vs modular driving agents on highway-env.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``driving`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(
            f"driving: error: unknown command {command!r}; choose from: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module_name = COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"driving {command}: not yet available", file=sys.stderr)
            return 2
        raise
    try:
        if module_name == "driving.train_cli":
            return int(module.main([command, *rest]) or 0)
        return int(module.main(rest) or 0)
    except UserError as exc:
        print(f"driving {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"driving {command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"driving {command}: error: disk full{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
