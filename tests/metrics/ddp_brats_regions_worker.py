"""Run by test_brats_region_metrics.py in a subprocess: region metrics on 2 gloo ranks holding 1 and 2 samples.

Writes a JSON report: the metrics each rank computed and those of one process given all 3 samples.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_ssl.metrics.brats_regions import BraTSRegionMetrics


def samples() -> tuple[torch.Tensor, torch.Tensor]:
    """Three (predicted, target) label-map pairs that score differently."""
    target = torch.zeros(3, 1, 16, 16, 8, dtype=torch.long)
    target[..., 3:12, 3:12, 2:6] = 2
    target[..., 5:10, 5:10, 3:5] = 3
    predicted = target.clone()
    predicted[1] = predicted[1].roll(2, dims=1)
    predicted[2] = 0
    return predicted, target


def results(metric: BraTSRegionMetrics) -> dict[str, float]:
    return {key: float(value) for key, value in metric.compute().items()}


def rank_run(rank: int, init_file: str, report: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    predicted, target = samples()
    part = slice(0, 1) if rank == 0 else slice(1, 3)
    metric = BraTSRegionMetrics()
    metric.update(predicted[part], target[part])
    computed = results(metric)
    with open(f"{report}.rank{rank}", "w") as handle:
        json.dump(computed, handle)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    init_file, report = sys.argv[1], sys.argv[2]
    mp.start_processes(rank_run, args=(init_file, report), nprocs=2, start_method="fork")
    single = BraTSRegionMetrics()
    single.update(*samples())
    ranks = [json.load(open(f"{report}.rank{rank}")) for rank in range(2)]
    with open(report, "w") as handle:
        json.dump({"ranks": ranks, "single": results(single)}, handle)
