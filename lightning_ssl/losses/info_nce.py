"""InfoNCE of contrastive predictive coding: each prediction picks its true vector among negatives of the same image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sample_negatives(
    batch: int, targets: torch.Tensor, grid_size: int, count: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices (B, P, K) of ``count`` distinct grid cells per prediction, never its target cell ``targets`` (P,).

    K is ``count`` or, in a grid too small for it, ``grid_size - 1``.
    """
    count = min(count, grid_size - 1)
    scores = torch.rand(batch, targets.numel(), grid_size, generator=generator, device=targets.device)
    scores[:, torch.arange(targets.numel(), device=targets.device), targets] = float("inf")
    return scores.topk(count, dim=-1, largest=False).indices


def info_nce(
    predictions: torch.Tensor,
    vectors: torch.Tensor,
    targets: torch.Tensor,
    num_negatives: int = 20,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of picking each prediction's true vector (index 0) among it and random negatives.

    ``predictions`` (B, P, D) predict ``vectors[:, targets]``, where ``vectors`` (B, G, D) are every
    patch vector of each image and ``targets`` (P,) the grid cell each prediction aims at. The
    negatives of a prediction are ``num_negatives`` other cells of the same image, drawn without
    replacement. Scores are dot products, as in CPC; the gradient reaches predictions and vectors.
    """
    batch, grid_size, _ = vectors.shape
    if grid_size < 2:
        raise ValueError("InfoNCE needs at least two patch vectors per image (one target and one negative)")
    negatives = sample_negatives(batch, targets, grid_size, num_negatives, generator)
    positive = vectors[:, targets]
    negative = torch.gather(vectors, 1, negatives.flatten(1)[..., None].expand(-1, -1, vectors.shape[-1]))
    candidates = torch.cat([positive[:, :, None], negative.view(*negatives.shape, -1)], dim=2)
    logits = torch.einsum("bpd,bpkd->bpk", predictions, candidates)
    labels = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten())


class InfoNCELoss(nn.Module):
    """:func:`info_nce` with a fixed number of negatives."""

    def __init__(self, num_negatives: int = 20) -> None:
        super().__init__()
        self.num_negatives = num_negatives

    def forward(
        self, predictions: torch.Tensor, vectors: torch.Tensor, targets: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The loss of ``predictions`` (B, P, D) of ``vectors[:, targets]`` (vectors: B, G, D)."""
        return info_nce(predictions, vectors, targets, self.num_negatives, generator)
