"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR, with negatives from every process."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_ssl.losses.distributed import gather, gather_with_grad, world


def nt_xent(views: Sequence[torch.Tensor], temperature: float = 0.1) -> torch.Tensor:
    """Mean NT-Xent over every view of every local sample.

    ``views`` holds V >= 2 projections (B, D) of the same B samples. Each projection is an anchor;
    its positives are the other views of its sample and its negatives every other projection of
    every process (gathered with gradient). With several positives (multi-crop), the anchor's loss
    is the mean over its positives of -log(exp(s_pos / t) / sum over all but itself of exp(s / t)).
    """
    if len(views) < 2:
        raise ValueError(f"NT-Xent needs at least two views per sample, got {len(views)}")
    batch = views[0].shape[0]
    rank, _ = world()
    local = F.normalize(torch.cat(list(views), dim=0), dim=1)
    sample_ids = torch.arange(batch, device=local.device).repeat(len(views)) + rank * batch
    everything = gather_with_grad(local)
    all_ids = gather(sample_ids)
    similarity = local @ everything.T / temperature
    own_position = torch.arange(local.shape[0], device=local.device) + rank * local.shape[0]
    is_self = torch.zeros_like(similarity, dtype=torch.bool)
    is_self[torch.arange(local.shape[0], device=local.device), own_position] = True
    positive = (sample_ids[:, None] == all_ids[None, :]) & ~is_self
    log_prob = similarity - torch.logsumexp(similarity.masked_fill(is_self, float("-inf")), dim=1, keepdim=True)
    per_anchor = -(log_prob * positive).sum(dim=1) / positive.sum(dim=1)
    return per_anchor.mean()


class NTXentLoss(nn.Module):
    """:func:`nt_xent` with a fixed temperature."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        """The loss of the projections of V views, each (B, D)."""
        return nt_xent(views, self.temperature)
