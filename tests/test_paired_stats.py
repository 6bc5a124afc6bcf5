"""Paired bootstrap, the exact Poisson interval of counts, and the crossover rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from driving.crossover import (
    NON_INFERIORITY_MARGIN,
    BudgetInterval,
    crossover_markdown,
    find_crossover,
    verdict,
)
from driving.stats import Stat, count_interval, paired_bootstrap, summarize


def _paired_sample(rng: np.random.Generator, n: int, difference: float):
    """Two agents on ``n`` shared seeds: a large per-seed effect, small per-agent noise."""
    seed_effect = rng.normal(0.7, 0.15, n)
    a = seed_effect + difference + rng.normal(0.0, 0.02, n)
    b = seed_effect + rng.normal(0.0, 0.02, n)
    return a, b


def _width(ci) -> float:
    return ci[1] - ci[0]


# -- paired bootstrap ---------------------------------------------------------------------------
def test_paired_bootstrap_covers_a_known_difference_about_as_often_as_it_says():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(100):
        a, b = _paired_sample(rng, 40, difference=0.03)
        low, high = paired_bootstrap(a, b, resamples=2000, seed=trial).ci95
        covered += low <= 0.03 <= high
    assert covered >= 85  # nominal 95 of 100


def test_paired_bootstrap_mean_shape_and_reproducibility():
    a, b = _paired_sample(np.random.default_rng(2), 50, difference=0.05)
    result = paired_bootstrap(a, b)
    assert type(result) is type(summarize(a, rate=False))
    assert result.n == 50
    assert result.mean == pytest.approx(float(np.mean(a - b)))
    low, high = result.ci95
    assert low < result.mean < high and low > 0  # a true 0.05 against noise of 0.02
    assert paired_bootstrap(a, b) == result  # seeded
    assert paired_bootstrap(a, b, seed=1).ci95 != result.ci95
    wider = paired_bootstrap(a, b, confidence=0.99).ci95
    assert wider[0] < low and wider[1] > high


def test_pairing_gives_a_narrower_interval_than_resampling_the_agents_apart():
    a, b = _paired_sample(np.random.default_rng(3), 60, difference=0.02)
    paired = paired_bootstrap(a, b).ci95
    unpaired = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        paired=False,
        method="percentile",
        n_resamples=10_000,
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert _width(paired) < 0.3 * (unpaired.high - unpaired.low)
    assert paired[0] > 0 > unpaired.low  # only the paired interval sees the difference


def test_paired_bootstrap_drops_incomplete_pairs_and_checks_its_input():
    result = paired_bootstrap([1.0, math.nan, 3.0, 4.0], [0.0, 1.0, math.inf, 2.0])
    assert result.n == 2 and result.mean == pytest.approx(1.5)
    assert paired_bootstrap([1.0], [0.5]) == Stat(0.5, None, 1)
    assert paired_bootstrap([], []) == Stat(None, None, 0)
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0, 2.0], [1.0, 2.0], confidence=95)


# -- counts -------------------------------------------------------------------------------------
def test_count_interval_is_garwoods_exact_poisson_interval():
    # 5 events in one episode: the textbook exact 95% limits 1.6235 and 11.6683
    result = count_interval([5])
    assert result.mean == 5.0 and result.n == 1
    assert result.ci95 == pytest.approx([1.6235, 11.6683], abs=1e-4)
    # 7 events over 20 episodes, from the chi-square formula
    values = [1] * 7 + [0] * 13
    low, high = count_interval(values).ci95
    assert low == pytest.approx(stats.chi2.ppf(0.025, 14) / 2 / 20)
    assert high == pytest.approx(stats.chi2.ppf(0.975, 16) / 2 / 20)


def test_count_interval_never_goes_below_zero():
    zero = count_interval([0] * 10)
    assert zero.mean == 0.0
    assert zero.ci95 == pytest.approx([0.0, -math.log(0.025) / 10])
    rng = np.random.default_rng(4)
    for _ in range(50):
        counts = rng.poisson(0.05, int(rng.integers(1, 30)))
        low, high = count_interval(counts).ci95
        assert 0.0 <= low <= counts.mean() <= high
        t = summarize(counts, rate=False).ci95
        if t is not None and counts.sum() == 1:
            assert t[0] < 0  # the t interval the count interval replaces goes below 0


def test_count_interval_checks_its_input():
    assert count_interval([math.nan]) == Stat(None, None, 0)
    assert count_interval([2, math.nan, 0]).n == 2
    for bad in ([-1, 2], [0.5, 1]):
        with pytest.raises(ValueError, match="non-negative integers"):
            count_interval(bad)


# -- crossover rule -----------------------------------------------------------------------------
def _curve(*points: tuple[int, float, float]) -> list[BudgetInterval]:
    """Budgets from ``(labels, low, high)``; the mean is the interval's midpoint."""
    return [
        BudgetInterval(labels, (low + high) / 2, low, high, 100) for labels, low, high in points
    ]


def test_verdicts_follow_the_lower_end_of_the_interval():
    margin = NON_INFERIORITY_MARGIN
    assert margin == 0.02
    (better, not_worse, worse, straddling, edge, zero) = _curve(
        (1, 0.001, 0.05),
        (2, -0.019, 0.03),
        (3, -0.08, -0.03),
        (4, -0.03, 0.04),  # mean above -margin, interval reaching below it
        (5, -margin, 0.01),  # the margin itself is not "above -margin"
        (6, 0.0, 0.02),  # nor is 0 "above 0"
    )
    assert verdict(better) == "better"
    assert verdict(not_worse) == "not worse"
    assert verdict(worse) == verdict(straddling) == verdict(edge) == "worse"
    assert verdict(zero) == "not worse"
    assert verdict(straddling, margin=0.05) == "not worse"


def test_crossover_is_the_first_budget_for_each_verdict():
    curve = _curve(
        (50_000, 0.004, 0.03),
        (1_000, -0.12, -0.06),
        (5_000, -0.05, -0.01),
        (20_000, -0.03, 0.02),  # falls back to worse: the crossover stays the first budget
        (10_000, -0.01, 0.03),
    )
    result = find_crossover(curve)
    assert [v.interval.labels for v in result.verdicts] == [1_000, 5_000, 10_000, 20_000, 50_000]
    assert [v.verdict for v in result.verdicts] == [
        "worse",
        "worse",
        "not worse",
        "worse",
        "better",
    ]
    assert result.not_worse_at == 10_000 and result.better_at == 50_000
    assert (
        result.summary()
        == "Not worse: from 10,000 expert labels. Better: from 50,000 expert labels."
    )


def test_crossover_not_reached():
    result = find_crossover(_curve((1_000, -0.2, -0.1), (4_000, -0.09, -0.03)))
    assert result.not_worse_at is None and result.better_at is None
    assert result.summary() == (
        "Not worse: not reached within 4,000 labels. Better: not reached within 4,000 labels."
    )
    only_not_worse = find_crossover(_curve((1_000, -0.01, 0.02)))
    assert only_not_worse.not_worse_at == 1_000 and only_not_worse.better_at is None


def test_crossover_checks_its_input():
    with pytest.raises(ValueError, match="at least one"):
        find_crossover([])
    with pytest.raises(ValueError, match="same budget"):
        find_crossover(_curve((1_000, -0.1, 0.0), (1_000, -0.1, 0.1)))
    with pytest.raises(ValueError, match="margin"):
        find_crossover(_curve((1_000, -0.1, 0.0)), margin=-0.01)
    with pytest.raises(ValueError, match="low <= mean <= high"):
        BudgetInterval(1_000, 0.5, 0.0, 0.1, 10)
    with pytest.raises(ValueError, match="no interval"):
        BudgetInterval.from_stat(1_000, paired_bootstrap([0.9], [0.8]))


def test_crossover_from_paired_scores_and_its_markdown():
    rng = np.random.default_rng(5)
    intervals = []
    for labels, gap in ((2_000, -0.10), (8_000, -0.005), (32_000, 0.04)):
        cnn, modular = _paired_sample(rng, 100, difference=gap)
        intervals.append(BudgetInterval.from_stat(labels, paired_bootstrap(cnn, modular)))
    result = find_crossover(intervals)
    assert [v.verdict for v in result.verdicts] == ["worse", "not worse", "better"]
    lines = crossover_markdown(result)
    text = "\n".join(lines)
    assert "−0.02" in text and "non-inferiority" in text
    assert "| expert labels | CNN − modular-vision [95% CI] | paired episodes | verdict |" in lines
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    first = intervals[0]
    assert rows[0] == (
        f"| 2,000 | {first.mean:+.3f} [{first.low:+.3f}, {first.high:+.3f}] | 100 | worse |"
    )
    assert rows[2].endswith("| better |")
    assert lines[-1] == result.summary()
    named = crossover_markdown(result, candidate="BC", reference="idm")
    assert any("BC − idm" in line for line in named)
