"""SimCLR (Chen et al., ICML 2020): agree across two views, against every other image of every process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lightning_ssl.losses import nt_xent
from lightning_ssl.methods.embedding import EmbeddingConfig, EmbeddingMethod
from lightning_ssl.models import MLP
from lightning_ssl.registry import METHODS


@dataclass
class SimCLRConfig(EmbeddingConfig):
    """NT-Xent temperature and the 2-layer projection head (no BatchNorm: exact across processes without sync)."""

    name: str = "simclr"
    temperature: float = 0.1


@METHODS.register("simclr")
class SimCLRMethod(EmbeddingMethod):
    """Encoder -> representation h -> projection MLP -> z; NT-Xent with the negatives gathered from every rank
    with their gradient, so N processes train exactly like one process on the N-times larger batch."""

    Config = SimCLRConfig
    citation = (
        "Chen T, Kornblith S, Norouzi M, Hinton G. A Simple Framework for Contrastive Learning of Visual "
        "Representations. ICML 2020."
    )

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        super().__init__(config, data_info, architecture)
        method = self.cfg.method
        self.projector = MLP(
            self.network.encoder.out_channels, method.projection_hidden, method.projection_dim, method.projection_batch_norm
        )

    def ssl_loss(self, views: list[torch.Tensor], representations: list[torch.Tensor]) -> torch.Tensor:
        """NT-Xent over the projections of every view."""
        return nt_xent([self.projector(h) for h in representations], self.cfg.method.temperature)
