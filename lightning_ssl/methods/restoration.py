"""What the restoration methods share: corrupt, restore with the encoder-decoder (sigmoid output), MSE."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.methods.preview import Preview


class RestorationMethod(BaseMethod):
    """Train the encoder-decoder to restore the original image from ``corrupt(images)`` with an L2 loss.

    The online probe learns from and is evaluated on the encoder's features of the clean images
    (one extra encoder pass without gradient; features of corrupted images mislead it).
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
        restored = self(corrupted)
        return corrupted, target, restored, F.mse_loss(restored, target)

    def _probe(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        if self.probe is None:
            return batch["image"].new_zeros(())
        with torch.no_grad():
            features = self.representation(batch["image"])
        return self.probe_loss(features, batch, stage)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """MSE between the restoration and the original (plus the online probe's loss)."""
        *_, loss = self._restore(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss + self._probe(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The same loss under corruptions fixed per batch, so epochs compare."""
        *_, loss = self._restore(batch, self.validation_generator(batch["image"].device, batch_idx))
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["image"].shape[0])
        self._probe(batch, "val")

    def preview(self, batch: dict[str, Any], dataloader_idx: int = 0) -> Preview:
        """The original images, their corrupted versions (as validated in the first batch) and the restorations."""
        corrupted, target, restored, _ = self._restore(batch, self.validation_generator(batch["image"].device, 0))
        return Preview("original_corrupted_restored", {"original": target, "corrupted": corrupted, "restored": restored})
