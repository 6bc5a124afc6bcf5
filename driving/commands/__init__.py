"""The ``driving`` command: one entry of :data:`COMMANDS` per command a user types.

Each command is a function ``(argv: list[str]) -> int`` in a module of this package (most are
the ``main`` of a file named after the command; the four LightningCLI subcommands share
``fit.py``; the benchmarks live in ``bench/``). This module only dispatches, by the longest
prefix of the command line found in the table, so ``driving --help`` stays fast and every
command is reached the same way. Errors are turned into exit statuses here, once:

- :class:`envs.errors.UserError` (a user mistake): one line on stderr, exit status 2, never a
  traceback;
- :class:`envs.errors.RunError` (a worker died, a NaN loss): one line, exit status 1;
- a full disk: one line, exit status 1 (what was written before stays valid: every writer
  writes then renames);
- a stop signal (Ctrl-C's SIGINT, or SIGTERM from ``kill``, ``timeout``, a batch scheduler):
  one line, exit status 128 + the signal number (130, 143). Both signals raise
  :class:`Stopped` (a ``KeyboardInterrupt``) in the main process, so every command stops the
  same way: environment workers are stopped, finished work is kept (collect writes the
  buffered episodes, evaluate has appended every finished row, fit keeps its last checkpoint;
  a library that turns the interrupt into its own exit, as Lightning does, still exits with the
  signal's status). A second signal while stopping exits at once (every writer writes then
  renames, so nothing half-written is left standing).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from envs.errors import RunError, UserError

COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("evaluate",): (
        "driving.commands.evaluate:main",
        "drive an agent on held-out seeds; write episodes.csv and summary.json",
    ),
    ("collect",): (
        "driving.commands.collect:main",
        "record expert demonstrations into a dataset folder",
    ),
    ("data",): (
        "driving.commands.data:main",
        "inspect or convert a dataset: `data info DIR`, `data verify DIR`, `data convert SRC DST`",
    ),
    ("fit",): (
        "driving.commands.fit:fit",
        "train a CNN policy (LightningCLI; --config experiments/<name>.yaml)",
    ),
    ("validate",): ("driving.commands.fit:validate", "validate a CNN policy (LightningCLI)"),
    ("test",): ("driving.commands.fit:test", "test a CNN policy (LightningCLI)"),
    ("predict",): (
        "driving.commands.fit:predict",
        "predict actions with a CNN policy (LightningCLI)",
    ),
    ("compare",): (
        "driving.commands.compare:main",
        "evaluate several agents on the same seeds; write report.md",
    ),
    ("curve",): (
        "driving.commands.curve:main",
        "BC vs DAgger learning curves against expert labels (collect, train, evaluate)",
    ),
    ("suite",): (
        "driving.commands.suite:main",
        "each scenario's CNN vs modular-vision, clean and under nuisances; summary table",
    ),
    ("watch",): ("driving.commands.watch:main", "watch an agent drive, live or recorded to video"),
    ("perception",): (
        "driving.commands.perception:main",
        "measure vision perception against ground truth",
    ),
    ("saliency",): (
        "driving.commands.saliency:main",
        "where a CNN looks (saliency on vehicles, markings) before its failures",
    ),
    ("bench", "env"): (
        "driving.commands.bench.env:main",
        "benchmark: policy and simulated steps/s of every scenario",
    ),
    ("bench", "sim"): (
        "driving.commands.bench.sim:main",
        "benchmark: stock vs accelerated simulation, with the speed-up",
    ),
    ("bench", "collect"): (
        "driving.commands.bench.collect:main",
        "benchmark: collection frames/s with 1 and 2 workers; dataset time and size",
    ),
    ("bench", "evaluate"): (
        "driving.commands.bench.evaluate:main",
        "benchmark: a network agent's closed-loop frames/s per worker count, pipelined or not",
    ),
    ("bench", "train"): (
        "driving.commands.bench.train:main",
        "benchmark: training samples/s, Lightning beside a bare PyTorch loop",
    ),
    ("demo",): (
        "driving.commands.demo:main",
        "collect, train, evaluate both approaches, print the comparison",
    ),
}
"""Command words -> (``module:function``, one-line help)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a command cleanly."""


class Stopped(KeyboardInterrupt):
    """A stop signal arrived in the main process (see the module docstring).

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_received: list[int] = []
"""The stop signals received during this command, in order."""


def _on_stop_signal(signum: int, frame: object) -> None:
    _received.append(signum)
    if len(_received) > 1:  # a second one while stopping: go now
        os._exit(128 + signum)
    raise Stopped(signum)


@contextlib.contextmanager
def _stop_handlers() -> Iterator[None]:
    """Route SIGINT and SIGTERM to :class:`Stopped` while the command runs, then put back the
    previous handlers (main thread only, as Python requires)."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _usage(prefix: tuple[str, ...] = ()) -> str:
    entries = {
        words: help_ for words, (_, help_) in COMMANDS.items() if words[: len(prefix)] == prefix
    }
    names = {" ".join(words): help_ for words, help_ in entries.items()}
    width = max(map(len, names))
    command = " ".join(("driving", *prefix))
    lines = [
        f"usage: {command} <command> [options]   ({command} <command> --help for its options)",
        "",
        "End-to-end CNN vs modular driving agents on highway-env.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, help_ in names.items()]
    return "\n".join(lines)


def _find(args: list[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """The longest table entry that starts ``args``, and the arguments after it."""
    for n in range(len(args), 0, -1):
        if tuple(args[:n]) in COMMANDS:
            return tuple(args[:n]), args[n:]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``driving`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    found = _find(args)
    if found is None:
        group = tuple(args[:1])
        members = [words[1] for words in COMMANDS if len(words) > 1 and words[:1] == group]
        given = args[1] if len(args) > 1 else None
        if members and given in (None, "-h", "--help"):  # `driving bench` alone
            print(_usage(group))
            return 0 if given else 2
        if members:
            command, choices = f"driving {args[0]}", members
        else:
            command, choices, given = (
                "driving",
                list(dict.fromkeys(w[0] for w in COMMANDS)),
                args[0],
            )
        print(
            f"{command}: error: unknown command {given!r}; choose from: {', '.join(choices)}",
            file=sys.stderr,
        )
        return 2
    words, rest = found
    name = " ".join(words)
    module_name, _, function = COMMANDS[words][0].partition(":")
    command = getattr(importlib.import_module(module_name), function)
    try:
        with _stop_handlers():
            return int(command(rest) or 0)
    except UserError as exc:
        print(f"driving {name}: error: {exc}", file=sys.stderr)
        return 2
    except RunError as exc:
        print(f"driving {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return _stopped(name)
    except SystemExit:  # a library that made the interrupt its own exit (Lightning: status 1)
        if not _received:
            raise
        return _stopped(name)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"driving {name}: error: disk full{where}", file=sys.stderr)
        return 1


def _stopped(name: str) -> int:
    """The one line and the exit status of a command stopped by a signal (Ctrl-C: SIGINT)."""
    signum = _received[0] if _received else int(signal.SIGINT)
    print(f"driving {name}: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
    return 128 + signum
