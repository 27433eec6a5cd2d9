"""Losses, one per file; the contrastive ones are correct across processes."""

from lightning_ssl.losses.byol import normalized_mse
from lightning_ssl.losses.distributed import gather, gather_with_grad, world
from lightning_ssl.losses.nt_xent import NTXentLoss, nt_xent

__all__ = ["NTXentLoss", "gather", "gather_with_grad", "normalized_mse", "nt_xent", "world"]
