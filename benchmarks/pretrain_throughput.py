"""End-to-end Genesis pretraining steps/s against the same model and batch fed pre-made tensors.

Arms, measured side by side in one run and interleaved (A, B, C, A, B, C, ...):
  A  `make pretrain METHOD=genesis` as it runs: Lightning Trainer, phantom DataModule (cropping,
     collation), batched corruption on the device, forward/backward/step.
  B  the same model, optimiser and corruption in a plain PyTorch loop over pre-made image batches
     (no DataModule, no Lightning): what A would reach if data and framework cost nothing.
  C  B without the corruption (pre-made corrupted/target pairs): the share the corruption takes.
Target: A >= 0.9 x B. Writes results/pretrain_throughput.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods import METHODS

RESULTS = Path(__file__).resolve().parent.parent / "results" / "pretrain_throughput.md"


class StepClock(pl.Callback):
    """Timestamps at the end of every training batch."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.stamps.append(time.perf_counter())


def steps_per_second(stamps: list[float], warmup: int) -> float:
    """Steps per second over the stamps after ``warmup`` steps."""
    kept = stamps[warmup:]
    return (len(kept) - 1) / (kept[-1] - kept[0])


def run_lightning(cfg, steps: int, warmup: int) -> float:
    """Arm A: Trainer.fit on the configured DataModule."""
    datamodule = DATASETS[cfg.data.name](cfg.data)
    method = METHODS[cfg.method.name](OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    clock = StepClock()
    trainer = pl.Trainer(
        max_steps=steps + warmup,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    trainer.fit(method, datamodule=datamodule)
    return steps_per_second(clock.stamps, warmup)


def run_plain(cfg, info: dict, batches: list[torch.Tensor], steps: int, warmup: int, corrupt: bool) -> float:
    """Arms B and C: a plain loop over pre-made batches (C: pre-corrupted pairs, no corruption)."""
    method = METHODS[cfg.method.name](OmegaConf.to_container(cfg, resolve=True), info)
    method.train()
    optimizer = method.configure_optimizers()
    pairs = [method.corruption(b) for b in batches]
    stamps = []
    for step in range(steps + warmup):
        images = batches[step % len(batches)]
        corrupted, target = method.corruption(images) if corrupt else pairs[step % len(pairs)]
        loss = torch.nn.functional.mse_loss(method(corrupted), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        stamps.append(time.perf_counter())
    return steps_per_second(stamps, warmup)


def main() -> None:
    """Measure the three arms and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per arm and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. network.features=[8,16,32,64]")
    args = parser.parse_args()
    cfg = build_config(["method=genesis", *args.overrides])
    pl.seed_everything(0)
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    batches = [next(loader)["image"] for _ in range(4)]
    info = datamodule.info.as_dict()
    results: dict[str, list[float]] = {"A": [], "B": [], "C": []}
    for _ in range(args.rounds):
        results["A"].append(run_lightning(cfg, args.steps, args.warmup))
        results["B"].append(run_plain(cfg, info, batches, args.steps, args.warmup, corrupt=True))
        results["C"].append(run_plain(cfg, info, batches, args.steps, args.warmup, corrupt=False))
    median = {arm: statistics.median(values) for arm, values in results.items()}
    load = os.getloadavg()[0]
    rows = [
        ("A: make pretrain path (Lightning + DataModule + corruption)", "A"),
        ("B: same model, pre-made images, corruption in the loop", "B"),
        ("C: same model, pre-made corrupted pairs", "C"),
    ]
    table = "\n".join(
        f"| {label} | {median[arm]:.3f} | {min(results[arm]):.3f}-{max(results[arm]):.3f} |" for label, arm in rows
    )
    ratio = median["A"] / median["B"]
    report = f"""# Genesis pretraining throughput: end to end vs pre-made tensors

- Date: {date.today().isoformat()}
- Machine: {os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__} ({torch.get_num_threads()} threads), Lightning {pl.__version__}
- Config: the default `make pretrain METHOD=genesis` (data {cfg.data.name}, batch {cfg.data.batch_size}, patch {list(cfg.data.patch_size)}, network {cfg.network.name} {list(cfg.network.get("features", []))}, norm {cfg.network.get("norm", "-")}){" with " + " ".join(args.overrides) if args.overrides else ""}
- {args.rounds} interleaved rounds of {args.steps} timed steps per arm after {args.warmup} warm-up steps; 1-minute load average at the end: {load:.2f}
- Command: `python benchmarks/pretrain_throughput.py --rounds {args.rounds} --steps {args.steps}{" " + " ".join(args.overrides) if args.overrides else ""}`

| arm | steps/s (median) | range over rounds |
|---|---|---|
{table}

A / B = **{ratio:.2f}** (target >= 0.9: {"met" if ratio >= 0.9 else "not met"}). The corruption takes {1 - median["B"] / median["C"]:.0%} of a step (1 - B / C).
"""
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
