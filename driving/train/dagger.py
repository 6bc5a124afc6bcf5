"""DAgger inside Lightning: collect with the policy being trained, label with the expert, train on.

Behaviour cloning drifts: the network visits states the expert never showed it. DAgger (Ross,
Gordon and Bagnell, 2011, "A Reduction of Imitation Learning and Structured Prediction to
No-Regret Online Learning") fixes that by rolling out the current policy, having the expert label
every visited frame, aggregating the frames into the dataset and training on the union.

:class:`DAgger` is a Lightning callback that runs one such *round* every ``every_n_epochs``
training epochs, from ``driving fit --config experiments/dagger_highway.yaml``:

1. the current network drives ``episodes_per_round`` new TRAINING seeds in ``workers``
   vectorised environments (batched inference on the training device); at every step the
   executed action is the expert's with probability ``beta`` and the policy's otherwise
   (:class:`~driving.mixers.BetaMixture`, ``beta = beta0 * beta_decay ** (round - 1)``), plus
   DART steering noise when ``noise_steer`` is set (the label stays the expert's clean action);
2. the expert labels every visited frame (``Episode.expert_actions``); by default
   ``modular-oracle:nearest-lane``, which re-plans from the frame alone and never starts a lane
   change: it steers to the nearest lane's centre behind that lane's leader. The plain oracle
   remembers the lane change it decided and keeps steering back to a lane the network has left;
   a labeller that re-runs its lane choice every frame flips between left and right. Either way
   the label is not a function of the frame, and the network averages it (the README's
   "Design notes" give the measured difference);
3. the episodes are appended to the dataset folder as one shard whose episode records carry
   their provenance (``dagger_round``, ``beta``, ``rank`` of the process that drove them,
   ``policy``: the checkpoint of the network that
   drove, saved just before the round as :func:`policy_checkpoint`);
4. the data module re-reads the folder at the next epoch
   (``trainer.reload_dataloaders_every_n_epochs: 1``).

Under DDP every process drives a disjoint slice of the round's seeds (``seeds[rank::world]``);
rank 0 gathers the episodes, writes the shard, and all processes wait for it before training on
the union (Lightning's distributed sampler splits it again). Nothing here depends on the number
of processes or nodes.

The label budget is the number of expert-labelled frames in the dataset (BC's frames plus every
round's); it is logged as ``dagger/expert_labels`` and written into every checkpoint, so BC and
DAgger are compared at equal budgets. The round counter is callback state, saved in checkpoints:
``driving fit --ckpt_path`` continues with the next round and the same dataset (seeds a killed
round already wrote are not collected twice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch.distributed as dist

from agents.base import Agent
from agents.cnn_agent import CnnAgent
from agents.registry import make_agent
from driving.dataset import DatasetWriter, read_manifest
from driving.mixers import BetaMixture, DartNoise
from driving.rollout import Episode, iter_episodes
from driving.seeds import DAGGER_FIRST_SEED, round_seeds
from envs.errors import UserError
from envs.nuisances import refuse_in_training
from envs.scenarios import Scenario, SeedRange


def policy_checkpoint(root_dir: str | Path, round_: int) -> Path:
    """Where round ``round_``'s driving policy is saved: ``<default_root_dir>/dagger/roundNN.ckpt``
    (it has trained on the initial data and rounds ``1 .. round_ - 1``)."""
    return Path(root_dir) / "dagger" / f"round{round_:02d}.ckpt"


def round_beta(beta0: float, beta_decay: float, round_: int) -> float:
    """The expert-execution probability of round ``round_`` (1-based): ``beta0`` decayed by
    ``beta_decay`` at every later round."""
    return beta0 * beta_decay ** (round_ - 1)


def drive_round(
    policy: Agent,
    scenario: Scenario,
    seeds: list[int],
    *,
    round_: int,
    beta: float,
    expert: str,
    workers: int,
    noise: DartNoise | None = None,
    progress: bool = True,
) -> list[Episode]:
    """Round ``round_``'s episodes on ``seeds``: ``policy`` drives, mixed with the ``expert``
    spec's actions at rate ``beta`` and perturbed by ``noise``
    (:class:`~driving.mixers.BetaMixture`); the expert labels every frame with its clean
    action."""
    device = getattr(policy, "device", "cpu")  # a network policy infers on its own device
    noisy = noise.describe() if noise else ""
    label = f"DAgger round {round_} (beta {beta:.2f}{noisy}, policy on {device})"
    return list(
        iter_episodes(
            policy,
            scenario,
            seeds,
            workers=workers,
            expert=make_agent(expert, scenario),
            mixer=BetaMixture(beta, round_, noise),
            record_frames=True,
            progress=label if progress else False,
        )
    )


def append_round(
    root: Path,
    parts: list[list[Episode]],
    *,
    round_: int,
    beta: float,
    policy_path: Path,
    noise: DartNoise | None = None,
) -> None:
    """Append a round's episodes to the dataset ``root``, one shard per process (``parts[rank]``),
    each episode recorded with its provenance: ``dagger_round``, ``beta``, ``rank``, the
    ``policy`` checkpoint that drove and the ``noise`` on its executed actions (None: none).
    Seeds already in the dataset (a resumed round) are skipped."""
    writer = DatasetWriter.open(root)
    for rank, part in enumerate(parts):
        new = [e for e in part if e.seed not in writer.done_seeds()]
        writer.request_seeds([e.seed for e in new if e.seed not in writer.requested_seeds()])
        if new:
            provenance = {
                "dagger_round": round_,
                "beta": beta,
                "rank": rank,
                "noise": None if noise is None else noise.to_dict(),
            }
            writer.add(new, {**provenance, "policy": str(policy_path)})


class DAgger(pl.Callback):
    """Aggregate expert-labelled on-policy data into the training set, round after round.

    Args:
        rounds: number of rounds (collections) in the run.
        every_n_epochs: training epochs between rounds (the first round follows the first
            ``every_n_epochs`` epochs of behaviour cloning on the initial data).
        episodes_per_round: episodes driven per round, over all processes.
        workers: vectorised environments per process (subprocesses above 1).
        beta0: expert-execution probability of round 1.
        beta_decay: factor applied to beta at each later round.
        expert: agent spec of the labelling expert.
        first_seed: where the DAgger seeds start in the scenario's training range (round ``r``
            uses the ``episodes_per_round`` seeds after those of round ``r - 1``); keep it
            clear of the seeds of the initial dataset.
        overrides: scenario overrides for the rollouts (e.g. a shorter ``duration``); they must
            keep the dataset's observation and action specs.
        max_expert_labels: stop collecting once the dataset holds this many labelled frames
            (None: no budget besides ``rounds``).
        noise_steer: standard deviation of the Gaussian noise on the rounds' executed steering,
            in normalised action units (0: none; see :class:`~driving.mixers.BetaMixture`).
        with_nuisance: allow a sensor nuisance in ``overrides`` (its frames join the training
            data; refused otherwise, as by ``driving collect``).
    """

    def __init__(
        self,
        rounds: int = 4,
        every_n_epochs: int = 2,
        episodes_per_round: int = 8,
        workers: int = 1,
        beta0: float = 0.5,
        beta_decay: float = 0.5,
        expert: str = "modular-oracle:nearest-lane",
        first_seed: int = DAGGER_FIRST_SEED,
        overrides: dict[str, Any] | None = None,
        max_expert_labels: int | None = None,
        noise_steer: float = 0.0,
        with_nuisance: bool = False,
    ) -> None:
        allow = "set DAgger's with_nuisance: true if that is meant"
        refuse_in_training(dict(overrides or {}), with_nuisance, allow)
        if min(rounds, every_n_epochs, episodes_per_round, workers) < 1:
            raise UserError("rounds, every_n_epochs, episodes_per_round and workers must be >= 1")
        if not (0.0 <= beta0 <= 1.0 and 0.0 <= beta_decay <= 1.0):
            raise UserError(f"beta0 and beta_decay must lie in [0, 1], got {beta0}, {beta_decay}")
        if noise_steer < 0:
            raise UserError(f"noise_steer must be >= 0, got {noise_steer}")
        self.rounds = rounds
        self.every_n_epochs = every_n_epochs
        self.episodes_per_round = episodes_per_round
        self.workers = workers
        self.beta0 = beta0
        self.beta_decay = beta_decay
        self.expert = expert
        self.first_seed = first_seed
        self.overrides = dict(overrides or {})
        self.max_expert_labels = max_expert_labels
        self.noise_steer = noise_steer
        self.rounds_done = 0

    # -- schedule ------------------------------------------------------------------------------
    def beta(self, round_: int) -> float:
        """The expert-execution probability of round ``round_`` (1-based)."""
        return round_beta(self.beta0, self.beta_decay, round_)

    def round_seeds(self, scenario_train: SeedRange, round_: int) -> list[int]:
        """The training seeds of round ``round_`` (all processes together)."""
        return round_seeds(scenario_train, self.first_seed, self.episodes_per_round, round_)

    # -- Lightning hooks -----------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        reload_every = trainer.reload_dataloaders_every_n_epochs
        if reload_every < 1 or self.every_n_epochs % reload_every:
            raise UserError(
                "DAgger needs trainer.reload_dataloaders_every_n_epochs: 1 to train on the "
                f"frames it adds (got {reload_every})"
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or self.rounds_done >= self.rounds:
            return
        datamodule = trainer.datamodule
        if (
            self.max_expert_labels is not None
            and datamodule.expert_labels >= self.max_expert_labels
        ):
            return
        self.run_round(trainer, pl_module, self.rounds_done + 1)

    def run_round(self, trainer: pl.Trainer, pl_module: pl.LightningModule, round_: int) -> None:
        """Collect, label and append one round; every process must call it."""
        datamodule = trainer.datamodule
        scenario = datamodule.scenario.with_overrides(self.overrides)
        root = Path(datamodule.root)
        policy_path = policy_checkpoint(trainer.default_root_dir, round_)
        trainer.save_checkpoint(policy_path)  # collective under DDP; rank 0 writes
        seeds = self.round_seeds(scenario.train_seeds, round_)
        done = set(read_manifest(root)["seeds"]["done"]) if trainer.is_global_zero else set()
        done = _broadcast(done)
        labels_before = datamodule.expert_labels
        mine = [s for s in seeds[trainer.global_rank :: trainer.world_size] if s not in done]
        beta = self.beta(round_)
        policy = CnnAgent(scenario, pl_module.network, pl_module.policy_record())
        noise = DartNoise.from_settings(scenario.action, self.noise_steer, 0.0)
        episodes = drive_round(
            policy,
            scenario,
            mine,
            round_=round_,
            beta=beta,
            expert=self.expert,
            workers=self.workers,
            noise=noise,
            progress=trainer.is_global_zero,
        )
        parts = _gather(episodes)
        if trainer.is_global_zero:
            append_round(
                root, parts, round_=round_, beta=beta, policy_path=policy_path, noise=noise
            )
        trainer.strategy.barrier("dagger-round")
        self.rounds_done = round_
        datamodule.reload()
        pl_module.log_dict(
            {
                "dagger/round": float(round_),
                "dagger/beta": beta,
                "dagger/frames_added": float(datamodule.expert_labels - labels_before),
                "dagger/expert_labels": float(datamodule.expert_labels),
            },
            sync_dist=True,  # the same on every process
        )

    def state_dict(self) -> dict[str, Any]:
        return {"rounds_done": self.rounds_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rounds_done = int(state_dict["rounds_done"])


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _broadcast(value: set[int]) -> set[int]:
    """Rank 0's ``value`` on every process."""
    if not _distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(episodes: list[Episode]) -> list[list[Episode]]:
    """Every process's episodes on rank 0, one list per rank (other ranks get ``[]``)."""
    if not _distributed():
        return [episodes]
    parts: list[list[Episode]] | None = None
    if dist.get_rank() == 0:
        parts = [[] for _ in range(dist.get_world_size())]
    dist.gather_object(episodes, parts, dst=0)
    return parts or []
