"""Which episode seeds a job drives, and the held-out rule.

Every scenario splits its seeds into three ranges (``envs.scenarios.Scenario``): training,
validation and held-out evaluation. The rule: data that a network learns from (demonstrations,
DAgger rounds) only ever comes from the training range; evaluation defaults to the held-out
range, and a user's own seed range that reaches into the training seeds is flagged as not
held-out.
"""

from __future__ import annotations

from collections.abc import Sequence

from envs.errors import UserError
from envs.scenarios import Scenario, SeedRange

DAGGER_FIRST_SEED = 50_000
"""Where DAgger's rollout seeds start in the training range, clear of the demonstrations'."""


def evaluation_seeds(scenario: Scenario, episodes: int | None, seeds: str | None) -> list[int]:
    """The first ``episodes`` of ``seeds`` ("A:B"; default: the held-out evaluation range).

    Raises:
        UserError: neither is given.
    """
    if seeds is None and episodes is None:
        raise UserError("give --episodes N (and/or --seeds A:B)")
    seed_range = SeedRange.parse(seeds) if seeds else scenario.evaluation_seeds
    return seed_range.first(episodes if episodes is not None else len(seed_range))


def touches_training(scenario: Scenario, seeds: Sequence[int]) -> bool:
    """Whether any of ``seeds`` is a training seed (results on them are not held-out)."""
    return any(s in scenario.train_seeds for s in seeds)


def training_seeds(scenario: Scenario, episodes: int | None, seeds: str | None) -> list[int]:
    """The first ``episodes`` seeds of ``seeds`` (default range: the scenario's training seeds).

    Raises:
        UserError: neither is given, or the range reaches outside the training seeds.
    """
    if episodes is None and seeds is None:
        raise UserError("give --episodes N (and/or --seeds A:B)")
    seed_range = SeedRange.parse(seeds) if seeds else scenario.train_seeds
    for kind, held_out in (
        ("evaluation", scenario.evaluation_seeds),
        ("validation", scenario.validation_seeds),
    ):
        if seed_range.overlaps(held_out):
            raise UserError(
                f"seeds {seed_range} overlap the held-out {kind} seeds ({held_out}); "
                f"collect uses training seeds only ({scenario.train_seeds})"
            )
    train = scenario.train_seeds
    if not (train.start <= seed_range.start and seed_range.stop <= train.stop):
        raise UserError(
            f"seeds {seed_range} are outside the training seeds ({train}) of {scenario.name}"
        )
    return seed_range.first(episodes if episodes is not None else len(seed_range))


def round_seeds(
    train_seeds: SeedRange, first_seed: int, episodes_per_round: int, round_: int
) -> list[int]:
    """The ``episodes_per_round`` training seeds of DAgger round ``round_`` (1-based): rounds
    follow each other from ``first_seed``.

    Raises:
        UserError: the round's seeds leave ``train_seeds``.
    """
    start = first_seed + (round_ - 1) * episodes_per_round
    seeds = list(range(start, start + episodes_per_round))
    if not (train_seeds.start <= seeds[0] and seeds[-1] < train_seeds.stop):
        raise UserError(
            f"DAgger round {round_} seeds {seeds[0]}..{seeds[-1]} leave the training seeds "
            f"({train_seeds})"
        )
    return seeds
