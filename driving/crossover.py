"""One crossover rule: from how many expert labels is the CNN no worse than the modular stack?

At each label budget (the expert labels the CNN was trained on), the CNN and the reference
(modular-vision) drive the same held-out seeds and the per-episode driving score
(:mod:`driving.score`) of the two is compared pair by pair:
:func:`driving.stats.paired_bootstrap` gives the mean difference ``CNN - reference`` and its 95%
interval. The verdict at a budget is

- ``"better"`` when the interval's lower end is above 0;
- ``"not worse"`` when it is above ``-NON_INFERIORITY_MARGIN``: the non-inferiority test of
  clinical trials (CONSORT extension for non-inferiority trials, Piaggio et al. 2012, JAMA 308),
  with the margin fixed before the runs;
- ``"worse"`` otherwise, including an interval that reaches below ``-margin`` while its mean is
  above it: not shown to be no worse.

The crossover is the fewest expert labels whose verdict is ``"not worse"`` or ``"better"``, and
apart from it the fewest whose verdict is ``"better"`` (the first such budget for each); when no
budget qualifies it is "not reached within N labels", N the largest budget tried.

The winner of one head-to-head (a scenario under one nuisance, :func:`winner`) follows from the
same interval and margin: the CNN when the interval's lower end is above 0, modular-vision when
its upper end is below 0, "tie" when it lies within ``±margin`` (equivalent: two one-sided
tests, Schuirmann 1987), and "undecided" otherwise (too few episodes to tell).

These are pure functions over data, without I/O, so that every report (compare, curve, demo,
suite) states the rule, its margin, the interval at every budget and the verdicts with the same
:func:`crossover_markdown` lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from driving.stats import Stat

NON_INFERIORITY_MARGIN = 0.02
"""Largest loss of mean driving score (score units; the score lies in [0, 1]) that still
counts as "not worse". Fixed before the runs, as a non-inferiority trial fixes its margin
(Piaggio et al. 2012)."""

Verdict = Literal["better", "not worse", "worse"]
"""The verdict at one label budget."""


@dataclass(frozen=True)
class BudgetInterval:
    """The paired difference ``candidate - reference`` in mean driving score at one budget.

    Attributes:
        labels: expert labels the candidate was trained on.
        mean: mean per-episode difference (score units).
        low, high: its 95% interval.
        n: paired episodes.
    """

    labels: int
    mean: float
    low: float
    high: float
    n: int

    def __post_init__(self) -> None:
        if self.labels < 0 or not self.low <= self.mean <= self.high:
            raise ValueError(f"bad budget interval {self}: need labels >= 0, low <= mean <= high")

    @classmethod
    def from_stat(cls, labels: int, stat: Stat) -> BudgetInterval:
        """From a :func:`~driving.stats.paired_bootstrap` result (a ValueError when it has no
        interval, e.g. fewer than 2 paired episodes)."""
        if stat.ci95 is None or stat.mean is None:
            raise ValueError(f"no interval at {labels} labels ({stat.n} paired episodes)")
        low, high = stat.ci95
        return cls(labels, stat.mean, low, high, stat.n)


@dataclass(frozen=True)
class BudgetVerdict:
    """One budget's interval and its verdict."""

    interval: BudgetInterval
    verdict: Verdict


@dataclass(frozen=True)
class Crossover:
    """The verdicts at every budget and the crossovers they give.

    Attributes:
        margin: the non-inferiority margin used.
        verdicts: one per budget, fewest labels first.
        not_worse_at: the fewest labels with a verdict of "not worse" or "better", or None.
        better_at: the fewest labels with a verdict of "better", or None.
    """

    margin: float
    verdicts: tuple[BudgetVerdict, ...]
    not_worse_at: int | None
    better_at: int | None

    @property
    def max_labels(self) -> int:
        """The largest budget tried."""
        return self.verdicts[-1].interval.labels

    def summary(self) -> str:
        """One sentence: where each crossover lies, or that it was not reached."""
        return f"Not worse: {self._at(self.not_worse_at)}. Better: {self._at(self.better_at)}."

    def _at(self, labels: int | None) -> str:
        if labels is None:
            return f"not reached within {self.max_labels:,} labels"
        return f"from {labels:,} expert labels"


def verdict(interval: BudgetInterval, margin: float = NON_INFERIORITY_MARGIN) -> Verdict:
    """The verdict of one paired interval: "better", "not worse" or "worse" (module docstring)."""
    if interval.low > 0:
        return "better"
    if interval.low > -margin:
        return "not worse"
    return "worse"


Winner = Literal["CNN", "modular-vision", "tie", "undecided"]
"""The outcome of one head-to-head on the driving score."""


def winner(low: float, high: float, margin: float = NON_INFERIORITY_MARGIN) -> Winner:
    """Who wins a head-to-head, from the 95% interval ``[low, high]`` of the paired difference
    ``CNN - modular-vision`` in driving score (module docstring)."""
    if low > 0:
        return "CNN"
    if high < 0:
        return "modular-vision"
    if -margin < low and high < margin:
        return "tie"
    return "undecided"


def find_crossover(
    intervals: Sequence[BudgetInterval], margin: float = NON_INFERIORITY_MARGIN
) -> Crossover:
    """The verdict at every budget and the first budget of each crossover.

    Args:
        intervals: one per budget, in any order, distinct ``labels``.
        margin: the non-inferiority margin (score units, >= 0).

    Raises:
        ValueError: no budget, two with the same labels, or a negative margin.
    """
    if not intervals:
        raise ValueError("the crossover needs at least one budget")
    if margin < 0:
        raise ValueError(f"the margin must be >= 0, got {margin}")
    ordered = sorted(intervals, key=lambda i: i.labels)
    labels = [i.labels for i in ordered]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two intervals at the same budget: {labels}")
    verdicts = tuple(BudgetVerdict(i, verdict(i, margin)) for i in ordered)
    return Crossover(
        margin=margin,
        verdicts=verdicts,
        not_worse_at=next((v.interval.labels for v in verdicts if v.verdict != "worse"), None),
        better_at=next((v.interval.labels for v in verdicts if v.verdict == "better"), None),
    )


def crossover_markdown(
    crossover: Crossover, *, candidate: str = "CNN", reference: str = "modular-vision"
) -> list[str]:
    """Markdown lines: the rule and its margin, the interval and verdict per budget, the result.

    Every report that states a crossover prints these lines, so the rule reads the same
    everywhere.
    """
    diff = f"{candidate} − {reference}"
    lines = [
        f"**Crossover rule.** At each budget of expert labels, {candidate} and {reference} drive "
        "the same held-out seeds; the paired difference in per-episode driving score "
        f"({diff}) has a 95% percentile-bootstrap interval. Verdict: *better* if its lower end "
        f"is above 0, *not worse* if it is above −{crossover.margin:g} (the non-inferiority "
        "margin, fixed before the runs), *worse* otherwise. The crossover is the fewest expert "
        "labels with a verdict of *not worse* or *better*.",
        "",
        f"| expert labels | {diff} [95% CI] | paired episodes | verdict |",
        "|---:|---|---:|---|",
    ]
    for v in crossover.verdicts:
        i = v.interval
        lines.append(
            f"| {i.labels:,} | {i.mean:+.3f} [{i.low:+.3f}, {i.high:+.3f}] | {i.n} | {v.verdict} |"
        )
    lines += ["", crossover.summary()]
    return lines
