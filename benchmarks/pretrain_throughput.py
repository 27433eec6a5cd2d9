"""End-to-end pretraining steps/s against the same model and batches fed as pre-made tensors, per scenario.

Arms, measured side by side in one run and interleaved (A, B, A, B, ...):
  A  `python -m lightning_ssl pretrain` as it runs: Lightning Trainer, the DataModule (reading, caching, collation,
     its workers), the method's batched corruption or views on the device, forward/backward/step.
  B  the same method's training step, model and optimiser in a plain PyTorch loop over batches read once beforehand:
     what A would reach if data loading and the framework cost nothing.
Target: A >= 0.9 x B for each scenario. Scenarios: the default Genesis run on phantoms, SimCLR with a ResNet-18 on
the real chest X-rays at 128 px, and Genesis in 3D on the real lung-nodule CT crops and on a real BraTS case (each
skipped with one line when its data is absent).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import REPO, header, refuse_if_busy, report_path  # noqa: E402

from lightning_ssl.config import build_config, registered  # noqa: E402
from lightning_ssl.schema import plain  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


@dataclass
class Scenario:
    """A pretraining configuration to time, and the shared data folder it needs (None: embedded phantoms)."""

    name: str
    overrides: list[str]
    needs: str | None = None
    results: dict[str, list[float]] = field(default_factory=lambda: {"A": [], "B": []})


def scenarios(cache: Path) -> list[Scenario]:
    """The scenarios of the report."""
    resnet = ["network=resnet", "network.depth=18", "network.widths=[32,64,128,256]", "network.stem_kernel=7",
              "network.stem_stride=2", "network.max_pool=true"]
    return [
        Scenario("genesis on phantoms (the default `make pretrain`)", ["method=genesis"]),
        Scenario("simclr, ResNet-18 (half width), chest X-rays 128 px, batch 64",
                 ["method=simclr", "data=chex", f"data.root={SHARED / 'chest_xray_224'}", "data.patch_size=[128,128]",
                  "data.batch_size=64", "data.cache=disk", f"data.cache_dir={cache}", *resnet], "chest_xray_224"),
        Scenario("genesis 3D, lung-nodule CT crops 48x48x48, batch 8",
                 ["method=genesis", "data=decathlon", f"data.root={SHARED / 'lidc_nodules'}", "data.intensity=none",
                  "data.patch_size=[48,48,48]", "data.batch_size=8", "data.cache=memory"], "lidc_nodules"),
        Scenario("genesis 3D, BraTS 2023 case, 4 channels, 64x64x64, batch 2",
                 ["method=genesis", "data=brats", f"data.root={SHARED / 'brats'}", "data.patch_size=[64,64,64]",
                  "data.batch_size=2", "data.cache=memory"], "brats"),
    ]


class StepClock(pl.Callback):
    """Timestamps at the end of every training batch."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args: object) -> None:
        self.stamps.append(time.perf_counter())


def steps_per_second(stamps: list[float], warmup: int) -> float:
    """Steps per second over the stamps after ``warmup`` steps."""
    kept = stamps[warmup:]
    return (len(kept) - 1) / (kept[-1] - kept[0])


def built(cfg) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The method and DataModule of a config, as a run builds them."""
    datamodule = registered("data", cfg.data.name)(cfg.data)
    method = registered("method", cfg.method.name)(plain(cfg), datamodule.info.as_dict())
    datamodule.training_data = method.training_data
    return method, datamodule


def run_lightning(cfg, steps: int, warmup: int) -> float:
    """Arm A: Trainer.fit on the configured DataModule."""
    method, datamodule = built(cfg)
    clock = StepClock()
    trainer = pl.Trainer(max_steps=steps + warmup, limit_val_batches=0, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[clock], num_sanity_val_steps=0)
    trainer.fit(method, datamodule=datamodule)
    return steps_per_second(clock.stamps, warmup)


def run_plain(cfg, batches: list[dict], steps: int, warmup: int) -> float:
    """Arm B: the method's training step in a plain loop over batches read beforehand."""
    method, _ = built(cfg)
    method.log = lambda *args, **kwargs: None
    method.train()
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=cfg.optim.lr)
    stamps = []
    for step in range(steps + warmup):
        loss = method.training_step(batches[step % len(batches)], step)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        stamps.append(time.perf_counter())
    return steps_per_second(stamps, warmup)


def premade_batches(cfg, count: int = 4) -> list[dict]:
    """Up to ``count`` training batches, read once (fewer when an epoch has fewer, as a single BraTS case gives)."""
    _, datamodule = built(cfg)
    datamodule.setup("fit")
    return list(itertools.islice(datamodule.train_dataloader(), count))


def main() -> None:
    """Measure both arms of every scenario and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per arm and round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", nargs="*", type=int, help="indices of the scenarios to run (default: all)")
    parser.add_argument("--cache", default="runs/benchmarks/throughput_cache", help="disk cache of decoded images")
    parser.add_argument("--write", action="store_true", help="write the committed report results/pretrain_throughput.md")
    parser.add_argument("--allow-busy", action="store_true", help="measure although another job loads the machine")
    args = parser.parse_args()
    load_start = refuse_if_busy("pretrain_throughput") if not args.allow_busy else os.getloadavg()[0]
    start = time.perf_counter()
    chosen = [s for i, s in enumerate(scenarios(REPO / args.cache)) if args.only is None or i in args.only]
    lines = []
    for scenario in chosen:
        if scenario.needs and not (SHARED / scenario.needs).exists():
            lines.append(f"| {scenario.name} | skipped: {SHARED / scenario.needs} is absent | | |")
            continue
        cfg = build_config([*scenario.overrides, "trainer.enable_progress_bar=false"])
        pl.seed_everything(0)
        batches = premade_batches(cfg)
        for _ in range(args.rounds):
            scenario.results["A"].append(run_lightning(cfg, args.steps, args.warmup))
            scenario.results["B"].append(run_plain(cfg, batches, args.steps, args.warmup))
        a, b = (statistics.median(scenario.results[arm]) for arm in "AB")
        spread = " / ".join(f"{min(scenario.results[arm]):.3f}-{max(scenario.results[arm]):.3f}" for arm in "AB")
        lines.append(f"| {scenario.name} | {a:.3f} | {b:.3f} | **{a / b:.2f}** ({'met' if a / b >= 0.9 else 'not met'}; ranges {spread}) |")
    loads = (load_start, os.getloadavg()[0])
    report = f"""# Pretraining throughput: end to end vs pre-made tensors

A is `python -m lightning_ssl pretrain` as it runs (Trainer, DataModule, the method's corruption or views, the step);
B is the same method's training step on batches read beforehand. Target A / B >= 0.9. {args.rounds} interleaved rounds of
{args.steps} timed steps per arm after {args.warmup} warm-up steps; medians; torch {torch.get_num_threads()} threads.

{header(time.perf_counter() - start, loads)}

| scenario | A: end to end (steps/s) | B: pre-made batches (steps/s) | A / B |
|---|---|---|---|
{chr(10).join(lines)}
"""
    output = report_path("pretrain_throughput.md", args.write)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    print(report)
    print(f"report written to {output}")


if __name__ == "__main__":
    main()
