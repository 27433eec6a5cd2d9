"""Models Genesis: restore images from a random composition of corruptions (Zhou et al., MICCAI 2019)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from lightning_ssl.config import MethodConfig
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.transforms.genesis import GenesisCorruption, GenesisCorruptionConfig


@dataclass
class GenesisConfig(MethodConfig):
    """Corruption probabilities (official defaults) of Models Genesis."""

    name: str = "genesis"
    corruption: GenesisCorruptionConfig = field(default_factory=GenesisCorruptionConfig)


class GenesisMethod(BaseMethod):
    """Encoder-decoder trained with MSE to restore the original from its corrupted version (sigmoid output)."""

    Config = GenesisConfig
    output_activation = "sigmoid"
    citation = (
        "Zhou Z, Sodha V, Rahman Siddiquee MM, et al. Models Genesis: Generic Autodidactic Models for 3D Medical "
        "Image Analysis. MICCAI 2019; and Medical Image Analysis 67 (2021) 101840."
    )

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any]) -> None:
        super().__init__(config, data_info)
        self.corruption = GenesisCorruption(GenesisCorruptionConfig(**self.cfg.method.corruption))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Restored images in [0, 1]."""
        return torch.sigmoid(self.network(images))

    def _restore(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        self.check_batch(batch)
        corrupted, target = self.corruption(batch["image"], generator)
        restored = self(corrupted)
        return corrupted, target, restored, F.mse_loss(restored, target)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """MSE between the restoration and the original."""
        *_, loss = self._restore(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The same loss under corruptions fixed per batch, so epochs compare; logs an image grid."""
        generator = torch.Generator(device=batch["image"].device).manual_seed(self.cfg.seed + batch_idx)
        corrupted, target, restored, loss = self._restore(batch, generator)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["image"].shape[0])
        if self.should_log_images(batch_idx):
            self.log_image_grid("val/original_corrupted_restored", [target, corrupted, restored])
