"""BYOL (Grill et al., NeurIPS 2020) with the patient-metadata head of seed 001 on by default."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lightning_ssl.losses import normalized_mse
from lightning_ssl.methods.embedding import EmbeddingConfig, EmbeddingMethod
from lightning_ssl.models import MLP
from lightning_ssl.models.heads import global_pool
from lightning_ssl.registry import METHODS


@dataclass
class BYOLConfig(EmbeddingConfig):
    """Projector/predictor MLPs (with BatchNorm, as in the paper) and the EMA momentum, rising to 1 on a cosine."""

    name: str = "byol"
    projection_batch_norm: bool = True
    prediction_hidden: int = 512
    momentum: float = 0.996
    metadata_head: bool = True


def target_momentum(step: int, total_steps: int, base: float) -> float:
    """tau = 1 - (1 - base) (cos(pi step / total) + 1) / 2: ``base`` at the start, 1 at the end."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- tau target + (1 - tau) online, parameter by parameter."""
    for target_param, online_param in zip(target.parameters(), online.parameters()):
        target_param.lerp_(online_param, 1 - tau)


@METHODS.register("byol")
class BYOLMethod(EmbeddingMethod):
    """Online encoder -> projector -> predictor regresses the target projection of the other view.

    The target encoder and projector are an exponential moving average of the online ones, updated
    once per optimiser step (not per micro-batch under gradient accumulation). Loss: normalised MSE,
    symmetrised over the views and averaged over (online view, other large view) pairs.
    """

    Config = BYOLConfig
    citation = (
        "Grill J-B, Strub F, Altche F, et al. Bootstrap Your Own Latent: a new approach to self-supervised "
        "learning. NeurIPS 2020. Patient-metadata head: seed 001 (medical-imaging SSL with patient metadata)."
    )

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        super().__init__(config, data_info, architecture)
        method = self.cfg.method
        width = self.network.encoder.out_channels
        self.projector = MLP(width, method.projection_hidden, method.projection_dim, method.projection_batch_norm)
        self.predictor = MLP(method.projection_dim, method.prediction_hidden, method.projection_dim, method.projection_batch_norm)
        self.target_encoder = copy.deepcopy(self.network.encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self._ema_step = 0

    def ssl_loss(self, views: list[torch.Tensor], representations: list[torch.Tensor]) -> torch.Tensor:
        """Mean normalised MSE between each view's online prediction and the target projection of each other large view."""
        predictions = [self.predictor(self.projector(h)) for h in representations]
        with torch.no_grad():
            targets = [self.target_projector(global_pool(self.target_encoder(view)[-1])) for view in views[:2]]
        pairs = [normalized_mse(p, z) for i, p in enumerate(predictions) for j, z in enumerate(targets) if i != j]
        return torch.stack(pairs).mean()

    def on_train_start(self) -> None:
        """Count EMA updates from the current step (a resumed run continues its schedule)."""
        self._ema_step = self.global_step

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Move the target towards the online network after each optimiser step."""
        if self.global_step == self._ema_step:
            return
        self._ema_step = self.global_step
        tau = target_momentum(self.global_step, int(self.trainer.estimated_stepping_batches), self.cfg.method.momentum)
        ema_update(self.target_encoder, self.network.encoder, tau)
        ema_update(self.target_projector, self.projector, tau)
        self.log("train/tau", tau, batch_size=1)
