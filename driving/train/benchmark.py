"""Training samples/s through Lightning beside a bare PyTorch loop (``driving bench train``).

Both loops train the same network (same initial weights) with AdamW on the same batches of the
same dataset (the DataModule's training loader), on the same device; the first ``warmup``
steps of each are not timed; the loops alternate ``repeats`` times and the best run of each
counts (load from other processes then hits both alike). Then one full training epoch through
Lightning is timed (no validation). Prints samples/s of both, their ratio (Lightning overhead),
and the epoch time::

    driving bench train --data runs/data/highway --steps 30
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass

import lightning.pytorch as pl
import torch

from agents.networks import NetworkConfig, count_parameters
from driving.train.datamodule import DemoDataModule
from driving.train.module import BehaviourCloning


class _StepClock(pl.Callback):
    """Times training steps ``warmup..end`` (synchronising CUDA so the times are real)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None
        self.samples = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup and self.start is None:
            _sync(pl_module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self.samples += len(batch[0])

    def on_train_end(self, trainer, pl_module) -> None:
        _sync(pl_module.device)
        self.end = time.perf_counter()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batches(loader: torch.utils.data.DataLoader) -> Iterator:
    while True:
        yield from loader


def bare_loop(
    module: BehaviourCloning,
    data: DemoDataModule,
    steps: int,
    warmup: int,
    device: torch.device,
    precision: str,
) -> float:
    """Samples/s of a plain PyTorch loop (AdamW, the module's weighted loss) after ``warmup``.

    ``precision`` ``"bf16-mixed"`` / ``"16-mixed"`` runs the forward pass under autocast (with a
    gradient scaler for float16), as Lightning does.
    """
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    net = module.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=module.hparams.lr)
    batches = _batches(data.train_dataloader())
    samples, start = 0, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        frames, speed, labels = next(batches)
        frames = frames.to(device, non_blocking=True)
        speed = speed.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            per = net.component_losses(net(frames, speed).float(), labels)
            loss = (per * net.loss_weights).sum() / net.loss_weights.sum()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if i >= warmup:
            samples += len(frames)
    _sync(device)
    return samples / (time.perf_counter() - start)


def _trainer(precision: str, clock: pl.Callback, **limits: int) -> pl.Trainer:
    """A bare Lightning trainer for timing: no logging, checkpoints, validation or bars."""
    return pl.Trainer(
        accelerator="auto",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[clock],
        **limits,
    )


def lightning_loop(
    module: BehaviourCloning, data: DemoDataModule, steps: int, warmup: int, precision: str
) -> float:
    """Samples/s of ``Trainer.fit`` over the same data after ``warmup`` steps."""
    clock = _StepClock(warmup)
    _trainer(precision, clock, max_steps=warmup + steps, max_epochs=-1).fit(module, datamodule=data)
    return clock.samples / (clock.end - clock.start)


def lightning_epoch(module: BehaviourCloning, data: DemoDataModule, precision: str) -> float:
    """Seconds of one full training epoch through Lightning (no validation)."""
    clock = _StepClock(0)
    _trainer(precision, clock, max_epochs=1).fit(module, datamodule=data)
    return clock.end - clock.start


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


@dataclass
class TrainBench:
    """What ``driving bench train`` measures.

    Attributes:
        data: the dataset folder.
        kind, width, speed_input: the network (:class:`~agents.networks.NetworkConfig`).
        batch_size: samples per step.
        brake_weight: braking frames drawn this many times as often.
        workers: DataLoader workers.
        steps: timed steps per loop (short loops measure the page cache).
        warmup: untimed steps first.
        repeats: alternating runs of each loop (the best is reported).
        precision: Lightning precision, e.g. ``"bf16-mixed"`` on a GPU.
        epoch: also time one full epoch through Lightning.
    """

    data: str
    kind: str = "pilotnet"
    width: float = 0.5
    speed_input: bool = True
    batch_size: int = 32
    brake_weight: float = 5.0
    workers: int = 0
    steps: int = 200
    warmup: int = 3
    repeats: int = 3
    precision: str = "32-true"
    epoch: bool = True


def run_train_bench(args: TrainBench) -> dict[str, float]:
    """Print and return samples/s of the bare loop and of Lightning, and their ratio."""
    pl.seed_everything(0, verbose=False)
    data = DemoDataModule(
        args.data,
        batch_size=args.batch_size,
        num_workers=args.workers,
        brake_weight=args.brake_weight,
    )
    config = NetworkConfig(kind=args.kind, width=args.width, speed_input=args.speed_input)
    module = BehaviourCloning(network=config, spec=data.policy_spec, schedule="constant")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    threads = torch.get_num_threads()
    print(
        f"bench train: {args.kind} width {args.width} ({count_parameters(module.network):,} "
        f"parameters, speed input {args.speed_input}), batch {args.batch_size}, brake weight "
        f"{args.brake_weight}, {len(data.train_rows)} training frames of "
        f"{args.data}, device {device}, {threads} CPU threads, precision {args.precision}"
    )
    bare_runs, lit_runs = [], []
    for _ in range(args.repeats):  # alternate, so that load from elsewhere hits both alike
        bare_runs.append(
            bare_loop(copy.deepcopy(module), data, args.steps, args.warmup, device, args.precision)
        )
        lit_runs.append(
            lightning_loop(copy.deepcopy(module), data, args.steps, args.warmup, args.precision)
        )
    bare, lit = max(bare_runs), max(lit_runs)
    print(f"  bare PyTorch loop  {bare:8.1f} samples/s  (best of {_fmt(bare_runs)})")
    print(f"  Lightning fit      {lit:8.1f} samples/s  (best of {_fmt(lit_runs)})")
    print(f"  ratio Lightning / bare = {lit / bare:.2f}")
    results = {"bare_samples_per_s": bare, "lightning_samples_per_s": lit, "ratio": lit / bare}
    if args.epoch:
        seconds = lightning_epoch(copy.deepcopy(module), data, args.precision)
        per = len(data.train_rows) / seconds
        print(
            f"  one epoch ({len(data.train_rows)} frames) through Lightning: {seconds:.1f} s "
            f"({per:.1f} samples/s)"
        )
        results["epoch_samples_per_s"] = per
    return results
