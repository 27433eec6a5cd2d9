"""Run by test_nt_xent.py in a subprocess: NT-Xent on 2 gloo ranks under DDP vs one process on the whole batch.

Writes a JSON report: the losses, the largest encoder-gradient difference with our gather, and the
same difference when the negatives are gathered without gradient (the known bug, for contrast).
"""

from __future__ import annotations

import importlib
import json
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from lightning_ssl.losses import gather, nt_xent
from lightning_ssl.models import MLP, UNetEncoder
from lightning_ssl.models.heads import global_pool

BATCH_PER_RANK = 4


class Embedder(torch.nn.Module):
    """U-Net encoder (instance norm) + projection MLP without BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = UNetEncoder(2, 1, features=[4, 8], norm="instance")
        self.projector = MLP(8, 16, 8, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(global_pool(self.encoder(x)[-1]))


def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    first = torch.rand(2 * BATCH_PER_RANK, 1, 16, 16, generator=generator)
    return first, (first + 0.1 * torch.rand(first.shape, generator=generator)).clamp(0, 1)


def model() -> Embedder:
    torch.manual_seed(0)
    return Embedder()


def gradients(network: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in network.encoder.parameters()])


def single_process() -> tuple[float, torch.Tensor]:
    network = model()
    first, second = data()
    loss = nt_xent([network(first), network(second)], temperature=0.2)
    loss.backward()
    return loss.item(), gradients(network)


def rank_run(rank: int, init_file: str, result: str, without_gradient: bool) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    if without_gradient:
        importlib.import_module("lightning_ssl.losses.nt_xent").gather_with_grad = gather
    network = DistributedDataParallel(model())
    first, second = data()
    part = slice(rank * BATCH_PER_RANK, (rank + 1) * BATCH_PER_RANK)
    loss = nt_xent([network(first[part]), network(second[part])], temperature=0.2)
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    if rank == 0:
        torch.save({"loss": mean_loss.item() / 2, "gradients": gradients(network.module)}, result)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    init_file, report, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    result = report + ".pt"
    mp.start_processes(rank_run, args=(init_file, result, mode == "without_gradient"), nprocs=2, start_method="fork")
    distributed = torch.load(result, weights_only=True)
    single_loss, single_gradients = single_process()
    difference = (distributed["gradients"] - single_gradients).abs().max().item()
    with open(report, "w") as handle:
        json.dump({"loss": distributed["loss"], "single_loss": single_loss, "max_gradient_difference": difference}, handle)
