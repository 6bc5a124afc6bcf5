"""Learning curves of BC and DAgger against expert labels, on held-out seeds (``driving curve``).

Reads a YAML recipe (see ``experiments/curve_highway.yaml``)::

    scenario: highway
    overrides: {}                 # scenario overrides for collection, training and evaluation
    train_config: experiments/bc_cpu_small.yaml   # the LightningCLI config both methods share
    expert: modular-oracle        # drives and labels the BC demonstrations
    dagger_expert: modular-oracle:nearest-lane   # labels DAgger's frames (see driving.train.dagger)
    first_episodes: 10            # expert episodes of the smallest budget (BC and DAgger start)
    episodes_per_point: 10        # expert-labelled episodes added per point of the curve
    points: 3                     # points after the first
    first_epochs: null            # epochs of point 0 from scratch (null: the train config's)
    epochs_per_point: 2           # fine-tuning epochs of every later point, both methods
    finetune_lr: null             # their learning rate (null: the train config's model.lr)
    seeds: [0]                    # training seeds: each fine-tuned chain is repeated per seed
    beta0: 0.5                    # DAgger's expert-execution probability at its first round
    beta_decay: 0.5
    noise_steer: 0.0              # DART noise of the BC demonstrations
    dagger_noise_steer: 0.0       # DART noise on DAgger rounds' executed steering (clean labels)
    episodes: 100                 # held-out evaluation episodes per checkpoint
    workers: 2
    out: runs/curve_highway
    fresh: false                  # true: evaluate every checkpoint again (driving compare --fresh)

and runs, all inside ``out``:

1. BC datasets: ``data/bc-0`` holds the first ``first_episodes`` training seeds; ``data/bc-k``
   is ``data/bc-(k-1)`` plus the next ``episodes_per_point`` seeds (collected once, copied).
2. Point 0, shared by both methods: ``driving fit`` from scratch on ``data/bc-0`` for
   ``first_epochs`` epochs (``bc/point-0``, the train config's own seed).
3. For each training seed ``s`` of ``seeds`` (``seed_everything``: batch order, augmentation),
   a chain of points after point 0, for each method:

   - BC point ``k`` (``bc/seed-s/point-k``): point ``k - 1``'s weights fine-tuned on
     ``data/bc-k`` for ``epochs_per_point`` epochs (``model.init_from``).
   - DAgger point ``k`` (``dagger/seed-s/point-k``; Ross et al. 2011): point ``k - 1``'s policy
     drives round ``k`` (``episodes_per_point`` new training seeds, mixed with the expert at
     rate ``beta0 * beta_decay ** (k - 1)``, steering perturbed by ``dagger_noise_steer``),
     ``dagger_expert`` labels every frame with its clean action, the frames
     are appended with their provenance to ``data/dagger-seed-s`` (a copy of ``data/bc-0``),
     and the policy is fine-tuned on the aggregate for ``epochs_per_point`` epochs. The rounds
     use the same functions as the :class:`~driving.train.dagger.DAgger` callback of
     ``driving fit``.

4. ``driving compare`` over every checkpoint (series ``BC`` and ``DAgger``) and the modular
   agents (reference lines) on the same held-out seeds: ``report.md`` with the curve, its table
   and the crossover with modular-vision. The checkpoints of one series and one point (one
   per training seed) pool their episodes into one point of the curve.

The two methods get the same training at every point, from the same starting weights with the
same schedule (the train config's, restarted per point, at ``finetune_lr`` when set); only the
frames added differ. Each point is its run's last checkpoint (not the best on validation loss),
so that neither method spends extra labels on model selection. The derived training configs
are written beside the runs, so each point can be rerun alone; a curve run again skips the
points it has, so a changed recipe needs a new ``out``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.registry import AgentSpec, make_agent
from driving.collection import collect
from driving.comparison import AgentEntry, CompareConfig, run_compare
from driving.configs import load_mapping, require_bools, require_positive_ints
from driving.dataset import DatasetWriter, read_manifest
from driving.files import atomic_append_text, atomic_write_text, copy_tree
from driving.mixers import DartNoise
from driving.seeds import DAGGER_FIRST_SEED, round_seeds
from driving.train.cli import fit
from driving.train.dagger import append_round, drive_round, round_beta
from envs.errors import UserError
from envs.scenarios import Scenario, get_scenario


@dataclass
class CurveConfig:
    """What ``driving curve`` runs (see the module docstring for each key)."""

    scenario: str = "highway"
    overrides: dict[str, Any] = field(default_factory=dict)
    train_config: str = "experiments/bc_cpu_small.yaml"
    expert: str = "modular-oracle"
    dagger_expert: str = "modular-oracle:nearest-lane"
    first_episodes: int = 10
    episodes_per_point: int = 10
    points: int = 3
    first_epochs: int | None = None
    epochs_per_point: int = 2
    finetune_lr: float | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    beta0: float = 0.5
    beta_decay: float = 0.5
    noise_steer: float = 0.0
    dagger_noise_steer: float = 0.0
    episodes: int = 100
    workers: int = 2
    out: str = "runs/curve_highway"
    wandb: bool = False
    fresh: bool = False


def load_curve_config(path: Path) -> CurveConfig:
    """Parse a curve recipe (a :class:`UserError` names the file and the bad key)."""
    config = CurveConfig(**load_mapping(path, CurveConfig))
    lr = config.finetune_lr
    if lr is not None and (not isinstance(lr, int | float) or isinstance(lr, bool) or lr <= 0):
        raise UserError(f"config {path}: finetune_lr must be a positive number, got {lr!r}")
    require_bools(config, path, ("wandb", "fresh"))
    for name in ("noise_steer", "dagger_noise_steer"):
        std = getattr(config, name)
        if not isinstance(std, int | float) or isinstance(std, bool) or std < 0:
            raise UserError(f"config {path}: {name} must be a number >= 0, got {std!r}")
    seeds = config.seeds
    if (
        not isinstance(seeds, list)
        or not seeds
        or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise UserError(
            f"config {path}: seeds must be a non-empty list of distinct non-negative integers, "
            f"got {seeds!r}"
        )
    positive = ["first_episodes", "episodes_per_point", "points", "epochs_per_point", "episodes"]
    positive += ["workers"] if config.first_epochs is None else ["workers", "first_epochs"]
    require_positive_ints(config, path, positive)
    return config


def _train_config(
    base: dict[str, Any],
    run: Path,
    data: Path,
    epochs: int,
    init_from: Path | None,
    seed: int | None = None,
) -> dict[str, Any]:
    """The shared training config pointed at ``data`` and ``run`` for ``epochs`` epochs, started
    from ``init_from``'s weights (None: from scratch) with training seed ``seed`` (None: the
    config's): a CSV logger, last-checkpoint saving, no closed-loop validation (the curve
    evaluates)."""
    config = yaml.safe_load(yaml.safe_dump(base))
    if seed is not None:
        config["seed_everything"] = seed
    trainer = config.setdefault("trainer", {})
    trainer["max_epochs"] = epochs
    trainer["default_root_dir"] = str(run)
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.CSVLogger",
        "init_args": {"save_dir": str(run), "name": "logs"},
    }
    trainer["callbacks"] = [
        {
            "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
            "init_args": {
                "dirpath": str(run / "checkpoints"),
                "save_last": True,
                "save_top_k": 0,
                "enable_version_counter": False,
            },
        }
    ]
    config.setdefault("model", {})["init_from"] = None if init_from is None else str(init_from)
    config.setdefault("data", {})["root"] = str(data)
    return config


def _finetune_config(
    config: CurveConfig, base: dict[str, Any], run: Path, data: Path, previous: Path, seed: int
) -> dict[str, Any]:
    """The training config of a point after point 0: ``previous`` fine-tuned on ``data`` for
    ``epochs_per_point`` epochs with training seed ``seed`` (at ``finetune_lr`` if set)."""
    train = _train_config(base, run, data, config.epochs_per_point, previous, seed)
    if config.finetune_lr is not None:
        train["model"]["lr"] = float(config.finetune_lr)
    return train


def _fit(config: dict[str, Any], path: Path) -> None:
    """Write the training config ``config`` to ``path`` (so the point can be rerun alone with
    ``driving fit --config``), then train from it in this process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    fit(config)


def _grow_datasets(config: CurveConfig, scenario: Scenario, data: Path) -> list[Path]:
    """``data/bc-0 .. bc-points``: nested expert datasets (each the previous plus new seeds)."""
    noise = DartNoise.from_settings(scenario.action, config.noise_steer, 0.0)
    seeds = scenario.train_seeds.first(
        config.first_episodes + config.points * config.episodes_per_point
    )
    expert = make_agent(config.expert, scenario)
    description = {"agent": config.expert, "expert": config.expert, "curve": True}
    roots = []
    for k in range(config.points + 1):
        root = data / f"bc-{k}"
        upto = config.first_episodes + k * config.episodes_per_point
        if not root.exists():
            if k == 0:
                DatasetWriter.create(
                    root,
                    scenario,
                    description,
                    seeds[:upto],
                    {"noise": noise.to_dict() if noise else None},
                )
            else:
                copy_tree(roots[-1], root)
                DatasetWriter.open(root).request_seeds(
                    seeds[upto - config.episodes_per_point : upto]
                )
        writer = DatasetWriter.open(root)
        if writer.missing_seeds():
            collect(writer, expert, mixer=noise, workers=config.workers, progress=f"collect bc-{k}")
        roots.append(root)
    return roots


def _point_zero(config: CurveConfig, base: dict[str, Any], first: Path, out: Path) -> Path:
    """Train point 0 (both methods' start) from scratch on ``first``; return its checkpoint."""
    run = out / "bc" / "point-0"
    ckpt = run / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        _fit(_train_config(base, run, first, _first_epochs(config, base), None), run / "train.yaml")
    return ckpt


def _bc_points(
    config: CurveConfig,
    base: dict[str, Any],
    roots: list[Path],
    start: Path,
    seed: int,
    out: Path,
) -> list[Path]:
    """BC's points 1..``points`` for training seed ``seed``: point ``k`` fine-tunes point
    ``k - 1`` (point 0: ``start``) on ``roots[k]``; return their last checkpoints."""
    checkpoints: list[Path] = []
    previous = start
    for k in range(1, config.points + 1):
        run = out / "bc" / f"seed-{seed}" / f"point-{k}"
        ckpt = run / "checkpoints" / "last.ckpt"
        if not ckpt.exists():
            _fit(_finetune_config(config, base, run, roots[k], previous, seed), run / "train.yaml")
        checkpoints.append(ckpt)
        previous = ckpt
    return checkpoints


def _dagger_points(
    config: CurveConfig,
    base: dict[str, Any],
    scenario: Scenario,
    first: Path,
    start: Path,
    seed: int,
    out: Path,
) -> list[Path]:
    """DAgger's points 1..``points`` for training seed ``seed``: point ``k`` drives round ``k``
    with point ``k - 1``'s policy (point 0: ``start``, BC's), appends the expert-labelled
    frames to a copy of the first dataset ``first``, and fine-tunes that policy on the
    aggregate."""
    data = out / "data" / f"dagger-seed-{seed}"
    if not data.exists():
        copy_tree(first, data)
    noise = DartNoise.from_settings(scenario.action, config.dagger_noise_steer, 0.0)
    checkpoints: list[Path] = []
    previous = start
    for k in range(1, config.points + 1):
        run = out / "dagger" / f"seed-{seed}" / f"point-{k}"
        ckpt = run / "checkpoints" / "last.ckpt"
        if not ckpt.exists():
            seeds = round_seeds(
                scenario.train_seeds, DAGGER_FIRST_SEED, config.episodes_per_point, k
            )
            done = set(read_manifest(data)["seeds"]["done"])
            todo = [s for s in seeds if s not in done]  # a resumed curve keeps what it drove
            beta = round_beta(config.beta0, config.beta_decay, k)
            if todo:
                episodes = drive_round(
                    make_agent(AgentSpec("cnn", str(previous)), scenario),
                    scenario,
                    todo,
                    round_=k,
                    beta=beta,
                    expert=config.dagger_expert,
                    workers=config.workers,
                    noise=noise,
                )
                append_round(
                    data, [episodes], round_=k, beta=beta, policy_path=previous, noise=noise
                )
            _fit(_finetune_config(config, base, run, data, previous, seed), run / "train.yaml")
        checkpoints.append(ckpt)
        previous = ckpt
    return checkpoints


def _first_epochs(config: CurveConfig, base: dict[str, Any]) -> int:
    """Training epochs of point 0, from scratch: ``first_epochs``, else the train config's."""
    if config.first_epochs is not None:
        return config.first_epochs
    return int((base.get("trainer") or {}).get("max_epochs") or config.epochs_per_point)


def run_curve(config: CurveConfig, command: str) -> Path:
    """Collect, train both methods, evaluate every checkpoint; return the report path."""
    started = time.perf_counter()
    out = Path(config.out)
    scenario = get_scenario(config.scenario).with_overrides(config.overrides)
    try:
        base = yaml.safe_load(Path(config.train_config).read_text())
    except OSError as exc:
        raise UserError(f"cannot read train_config {config.train_config}: {exc.strerror}") from None
    roots = _grow_datasets(config, scenario, out / "data")
    start = _point_zero(config, base, roots[0], out)
    chains = [("BC", _bc_points(config, base, roots, start, seed, out)) for seed in config.seeds]
    chains += [
        ("DAgger", _dagger_points(config, base, scenario, roots[0], start, seed, out))
        for seed in config.seeds
    ]
    entries = [AgentEntry(AgentSpec("cnn", str(start)), "BC", 0)]
    for series, checkpoints in chains:  # a point pools its seeds' runs, whatever their labels
        entries += [
            AgentEntry(AgentSpec("cnn", str(ckpt)), series, k)
            for k, ckpt in enumerate(checkpoints, start=1)
        ]
    compare = CompareConfig(
        agents=[
            *entries,
            AgentEntry(AgentSpec("modular-oracle")),
            AgentEntry(AgentSpec("modular-vision")),
        ],
        scenario=config.scenario,
        overrides=config.overrides,
        episodes=config.episodes,
        workers=config.workers,
        out=str(out),
        wandb=config.wandb,
        fresh=config.fresh,
        title=f"BC vs DAgger learning curves on {config.scenario}",
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.yaml", yaml.safe_dump(compare.to_dict(), sort_keys=False))
    report = run_compare(compare, command)
    minutes = (time.perf_counter() - started) / 60
    atomic_append_text(
        report,
        f"\nThis run (the collection, training and evaluation it did not find done): "
        f"{minutes:.1f} min wall time.\n",
    )
    print(f"curve done in {minutes:.1f} min")
    return report
