"""The one exception type for user mistakes, shared by every layer.

A ``UserError`` is a bad scenario name, a bad config value, a bad seed range, a bad agent spec,
a broken file handed to us: anything the user can fix. The CLI prints its message on one line
and exits with status 2; it never shows a traceback for it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """A mistake in the user's input, explained in one line."""


def unknown_choice(kind: str, value: str, choices: Iterable[str]) -> UserError:
    """Build the error for an unknown name, listing the valid choices and the closest match.

    Args:
        kind: what was being named, e.g. ``"scenario"``.
        value: the name the user gave.
        choices: the valid names.
    """
    valid = sorted(choices)
    close = difflib.get_close_matches(value, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(f"unknown {kind} {value!r}{hint}; valid choices: {', '.join(valid)}")


class RunError(RuntimeError):
    """A run that could not finish for a reason outside the user's input (an environment worker
    died, training met a NaN loss), explained in one line that says what was kept. The CLI
    prints it and exits with status 1."""
