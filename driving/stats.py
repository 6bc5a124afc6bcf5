"""Confidence intervals for driving figures: Wilson for rates, Student t for means.

Every aggregate is a :class:`Stat` (stored as ``{"mean": m, "ci95": [low, high], "n": n}``);
an interval that cannot be computed (``n < 2`` for a mean, ``n = 0``) is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

Z95 = 1.959963984540054
"""Two-sided 95% standard normal quantile."""


@dataclass(frozen=True)
class Stat:
    """One aggregate figure: the mean over ``n`` values and its 95% interval (None when it is
    undefined); ``mean`` is None when there is no value."""

    mean: float | None
    ci95: tuple[float, float] | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``{"mean", "ci95": [low, high] or None, "n"}``."""
        return {"mean": self.mean, "ci95": list(self.ci95) if self.ci95 else None, "n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stat:
        """The inverse of :meth:`to_dict`."""
        ci = data.get("ci95")
        return cls(data["mean"], (float(ci[0]), float(ci[1])) if ci else None, int(data["n"]))


def format_ci(stat: Stat, digits: int = 2) -> str:
    """``"0.12 [0.05, 0.20]"`` (``"n/a"`` when undefined)."""
    if stat.mean is None:
        return "n/a"
    text = f"{stat.mean:.{digits}f}"
    if stat.ci95:
        low, high = stat.ci95
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (good at 0, 1 and small ``n``)."""
    if n == 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """Student-t interval of the mean of ``values`` (``None`` when fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return None
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sem
    return mean - half, mean + half


def summarize(values: Sequence[float], rate: bool) -> Stat:
    """The :class:`Stat` of per-episode values; ``rate=True`` for 0/1 outcomes.

    Non-finite values (e.g. an undefined per-episode figure) are left out and ``n`` counts only
    the finite ones.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Stat(None, None, 0)
    ci = wilson_interval(round(x.sum()), n) if rate else t_interval(x)
    return Stat(float(x.mean()), ci, n)


def pool_rates(rates: Sequence[Stat]) -> Stat:
    """One rate from several :func:`summarize` rates (``rate=True``): their episodes together.

    For repeats of one recipe (e.g. training seeds): the mean is over all episodes and the
    Wilson interval counts episodes, not repeats, so it leaves out the spread between repeats;
    report the repeats' own rates beside it.
    """
    n = sum(r.n for r in rates)
    if n == 0:
        return Stat(None, None, 0)
    successes = sum(round(float(r.mean) * r.n) for r in rates if r.n)
    return Stat(successes / n, wilson_interval(successes, n), n)
