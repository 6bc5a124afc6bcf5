"""Confidence intervals for driving figures: Wilson for rates, Student t for means, Garwood's
exact Poisson interval for counts, and a paired bootstrap for differences between two agents
on the same seeds.

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


def format_ci(stat: Stat, digits: int = 2, *, signed: bool = False) -> str:
    """``"0.12 [0.05, 0.20]"`` (``"n/a"`` when undefined); ``signed`` writes every sign, as a
    difference reads best (``"+0.12 [-0.01, +0.20]"``)."""
    if stat.mean is None:
        return "n/a"
    spec = f"{'+' if signed else ''}.{digits}f"
    text = format(stat.mean, spec)
    if stat.ci95:
        low, high = stat.ci95
        text += f" [{format(low, spec)}, {format(high, spec)}]"
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


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Stat:
    """The :class:`Stat` of the mean paired difference ``a - b``, bootstrapped.

    ``a[i]`` and ``b[i]`` are one episode seed driven by two agents. The percentile bootstrap
    (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13) resamples the seeds
    with the same indices for ``a`` and ``b``, i.e. it resamples the differences, so what a seed
    decides for both agents (traffic, start) drops out of the spread: when the pairs are
    correlated the interval is narrower than one that resamples the two agents apart.

    Args:
        a, b: ``(n,)`` per-episode values, paired by position. Pairs with a non-finite value
            are left out; ``n`` counts the pairs kept.
        resamples: bootstrap resamples.
        seed: seed of the resampling; the same inputs and seed give the same interval.
        confidence: coverage of the interval (stored as ``ci95`` whatever its value).

    Returns:
        ``mean`` of ``a - b``, ``ci95`` (None when fewer than 2 pairs), ``n``.

    Raises:
        ValueError: ``a`` and ``b`` are not 1-D of one length, ``resamples < 1``, or
            ``confidence`` is not in (0, 1).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"a and b must be 1-D and paired, got shapes {x.shape} and {y.shape}")
    if resamples < 1 or not 0 < confidence < 1:
        raise ValueError(
            f"need resamples >= 1 and 0 < confidence < 1, got {resamples}, {confidence}"
        )
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    n = len(d)
    if n == 0:
        return Stat(None, None, 0)
    if n < 2:
        return Stat(float(d.mean()), None, n)
    result = stats.bootstrap(
        (d,),
        np.mean,
        n_resamples=resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Stat(float(d.mean()), (float(ci.low), float(ci.high)), n)


def count_interval(values: Sequence[float], confidence: float = 0.95) -> Stat:
    """The :class:`Stat` of a mean count per episode, with the exact Poisson interval.

    For counts that cannot go below 0 (e.g. interventions per episode), where a t interval can.
    The total ``K`` over ``n`` episodes is taken as Poisson, and Garwood's exact interval
    (Garwood 1936, "Fiducial limits for the Poisson distribution", Biometrika 28) of its mean is
    divided by ``n``: ``[chi2.ppf(alpha / 2, 2K) / 2, chi2.ppf(1 - alpha / 2, 2K + 2) / 2] / n``
    with ``alpha = 1 - confidence``, the lower end 0 when ``K = 0``. It assumes one rate for all
    episodes; counts that bunch in a few episodes make it too narrow.

    Args:
        values: ``(n,)`` per-episode counts, non-negative integers; non-finite values are left
            out and ``n`` counts the others.
        confidence: coverage of the interval (stored as ``ci95``).

    Raises:
        ValueError: a count is negative or not an integer, or ``confidence`` is not in (0, 1).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise ValueError("counts must be non-negative integers")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = len(x)
    if n == 0:
        return Stat(None, None, 0)
    total = float(x.sum())
    alpha = 1 - confidence
    low = float(stats.chi2.ppf(alpha / 2, 2 * total)) / 2 if total > 0 else 0.0
    high = float(stats.chi2.ppf(1 - alpha / 2, 2 * total + 2)) / 2
    return Stat(total / n, (low / n, high / n), n)


def summarize_kind(values: Sequence[float], kind: str) -> Stat:
    """The :class:`Stat` of per-episode values of a metric of ``kind``: ``"rate"`` (Wilson),
    ``"count"`` (:func:`count_interval`) or ``"mean"`` (Student t)."""
    if kind == "count":
        return count_interval(values)
    if kind not in ("rate", "mean"):
        raise ValueError(f"unknown metric kind {kind!r}")
    return summarize(values, rate=kind == "rate")
