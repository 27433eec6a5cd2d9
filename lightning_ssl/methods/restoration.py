"""What the restoration methods share: corrupt, restore with the encoder-decoder (sigmoid output), MSE."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.models.heads import global_pool


class RestorationMethod(BaseMethod):
    """Train the encoder-decoder to restore the original image from ``corrupt(images)`` with an L2 loss.

    The online probe learns from the encoder's features of the corrupted training images (computed
    anyway) and is evaluated on the features of the clean validation images.
    """

    output_activation = "sigmoid"

    def corrupt(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The corrupted version of ``images`` (B, C, *spatial) in [0, 1]."""
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Restored images in [0, 1]."""
        return torch.sigmoid(self.network(images))

    def _restore(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        self.check_batch(batch)
        target = batch["image"]
        corrupted = self.corrupt(target, generator)
        features = self.network.encoder(corrupted)
        restored = torch.sigmoid(self.network.decoder(features))
        return corrupted, target, restored, global_pool(features[-1]), F.mse_loss(restored, target)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """MSE between the restoration and the original (plus the online probe's loss)."""
        _, _, _, pooled, loss = self._restore(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss + self.probe_loss(pooled, batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The same loss under corruptions fixed per batch, so epochs compare; logs an image grid."""
        generator = torch.Generator(device=batch["image"].device).manual_seed(self.cfg.seed + batch_idx)
        corrupted, target, restored, _, loss = self._restore(batch, generator)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["image"].shape[0])
        if self.probe is not None:
            self.probe_loss(self.representation(target), batch, "val")
        if self.should_log_images(batch_idx):
            self.log_image_grid("val/original_corrupted_restored", [target, corrupted, restored])
