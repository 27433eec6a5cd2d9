"""What SimCLR and BYOL share: an encoder-only network, random views, the patient-metadata head, the probe."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning_fabric.utilities.rank_zero import rank_zero_only
from omegaconf import OmegaConf

from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.methods.preview import Preview
from lightning_ssl.models import MetadataHead
from lightning_ssl.schema import MethodConfig
from lightning_ssl.transforms.views import ViewConfig, ViewGenerator

log = logging.getLogger(__name__)


@dataclass
class EmbeddingConfig(MethodConfig):
    """Views, projection head and the optional patient-metadata head (seed 001) of a joint-embedding method."""

    views: ViewConfig = field(default_factory=ViewConfig)
    projection_hidden: int = 512
    projection_dim: int = 128
    projection_batch_norm: bool = False
    metadata_head: bool = False
    metadata_column: str = "patient_id"
    metadata_weight: float = 1.0
    metadata_hidden: int = 256


class EmbeddingMethod(BaseMethod):
    """Learn an encoder from two (or more) random views of each image; the decoder is never trained.

    Subclasses implement ``ssl_loss(views, representations)``. With ``method.metadata_head=true`` a
    2-layer MLP on the online representation is trained with cross-entropy on ``metadata_column``;
    samples whose value is unknown are ignored, and a dataset without that column turns the head off.
    """

    trains_decoder = False

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        super().__init__(config, data_info, architecture)
        views = OmegaConf.to_container(self.cfg.method.views, resolve=True)
        self.views = ViewGenerator(ViewConfig(**views), self.data_info.spatial_dims)
        self.metadata_head: MetadataHead | None = None

    def setup(self, stage: str) -> None:
        """Build the metadata head from the training split's values of ``metadata_column``."""
        method = self.cfg.method
        if not method.metadata_head or self.metadata_head is not None:
            return
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        vocabulary = datamodule.metadata_vocabulary(method.metadata_column) if datamodule is not None else None
        if not vocabulary:
            if rank_zero_only.rank == 0:
                log.warning(
                    "method.metadata_head is on but the data has no %r column: the metadata head is off for this run",
                    method.metadata_column,
                )
            return
        self.metadata_head = MetadataHead(self.network.encoder.out_channels, vocabulary, method.metadata_hidden)
        log.info("metadata head: cross-entropy over %d values of %r", len(vocabulary), method.metadata_column)

    def ssl_loss(self, views: list[torch.Tensor], representations: list[torch.Tensor]) -> torch.Tensor:
        """The self-supervised loss of the views of one batch and their pooled encoder features."""
        raise NotImplementedError

    def _views(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], ...]:
        views = self.views(images, generator)
        return views, [self.representation(view) for view in views]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """SSL loss + weight x metadata cross-entropy + the online probe's loss."""
        self.check_batch(batch)
        size = batch["image"].shape[0]
        views, representations = self._views(batch["image"])
        loss = self.ssl_loss(views, representations)
        self.log("train/ssl_loss", loss, prog_bar=True, batch_size=size)
        total = loss + self.probe_loss(representations[0], batch, "train")
        if self.metadata_head is not None:
            metadata = self.metadata_head(representations[0], batch.get(self.cfg.method.metadata_column) or [None] * size)
            self.log("train/metadata_loss", metadata, batch_size=size)
            loss = loss + self.cfg.method.metadata_weight * metadata
            total = total + self.cfg.method.metadata_weight * metadata
        self.log("train/loss", loss, batch_size=size)
        return total

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The SSL loss under views fixed per batch, and the probe on the clean images."""
        self.check_batch(batch)
        images = batch["image"]
        views, representations = self._views(images, self.validation_generator(images.device, batch_idx))
        loss = self.ssl_loss(views, representations)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=images.shape[0])
        if self.probe is not None:
            self.probe_loss(self.representation(images), batch, "val")

    def preview(self, batch: dict[str, Any], dataloader_idx: int = 0) -> Preview:
        """The original images and their views (as validated in the first batch); smaller crops are shown enlarged."""
        self.check_batch(batch)
        images = batch["image"]
        views = self.views(images, self.validation_generator(images.device, 0))
        return Preview("original_and_views", {"original": images, **{f"view {k}": view for k, view in enumerate(views, 1)}})
