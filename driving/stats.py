"""Confidence intervals for driving figures: Wilson for rates, Student t for means.

Every aggregate is ``{"mean": m, "ci95": [low, high], "n": n}``; an interval that cannot be
computed (``n < 2`` for a mean, ``n = 0``) is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

Z95 = 1.959963984540054
"""Two-sided 95% standard normal quantile."""


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


def summarize(values: Sequence[float], rate: bool) -> dict[str, object]:
    """``{"mean", "ci95", "n"}`` of per-episode values; ``rate=True`` for 0/1 outcomes.

    Non-finite values (e.g. an undefined per-episode figure) are left out and ``n`` counts only
    the finite ones.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    ci = wilson_interval(round(x.sum()), n) if rate else t_interval(x)
    return {"mean": float(x.mean()), "ci95": list(ci) if ci else None, "n": n}


def pool_rates(rates: Sequence[dict[str, object]]) -> dict[str, object]:
    """One rate from several :func:`summarize` rates (``rate=True``): their episodes together.

    For repeats of one recipe (e.g. training seeds): the mean is over all episodes and the
    Wilson interval counts episodes, not repeats, so it leaves out the spread between repeats;
    report the repeats' own rates beside it.
    """
    n = sum(int(r["n"]) for r in rates)
    if n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    successes = sum(round(float(r["mean"]) * int(r["n"])) for r in rates if r["n"])
    return {"mean": successes / n, "ci95": list(wilson_interval(successes, n)), "n": n}
