"""ssCPCseg: semi-supervised segmentation regularised by contrastive predictive coding (Iwasawa et al., BrainLes 2020)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from monai.losses import DiceCELoss

from lightning_ssl.losses.info_nce import InfoNCELoss
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.methods.preview import Preview
from lightning_ssl.metrics.evaluation import SegMetrics, log_scores, segmentation_scores
from lightning_ssl.models.cpc import CPCBranch
from lightning_ssl.registry import METHODS
from lightning_ssl.schema import ConfigError, MethodConfig
from lightning_ssl.metrics.brats_labels import brats_regions


@dataclass
class CPCSegConfig(MethodConfig):
    """Loss weight and CPC branch of ssCPCseg.

    ``cpc_weight``: weight of the CPC loss beside Dice + cross-entropy; 0.001 is the authors' published
    value (``cpc_vaeseg_cpc_loss_weight`` in their BraTS configs). ``cpc_patch_size``/``cpc_stride``: the
    overlapping patch grid (paper: 32 voxels, stride 16, on 144x144x128 crops). ``cpc_negatives``: negatives
    per prediction, drawn from the other patches of the same image (authors' code: 20). ``cpc_dim``: the
    patch-vector size (None: the encoder's bottleneck width, as in the paper). ``predictor_blocks``:
    residual blocks of the predictor (paper: 8). ``seg_classes``: softmax outputs (background included; 4 = the
    canonical BraTS labels: background, necrotic core, edema, enhancing). ``seg_metrics``: Dice and HD95 per BraTS
    region (``brats_regions``, the paper's) or per foreground class (``classes``, e.g. a binary lesion mask).
    ``dice_background``: whether the Dice term counts the background class (the default) or the foreground only.
    """

    name: str = "cpcseg"
    cpc_weight: float = 0.001
    cpc_patch_size: int = 32
    cpc_stride: int = 16
    cpc_negatives: int = 20
    cpc_dim: Optional[int] = None
    predictor_blocks: int = 8
    seg_classes: int = 4
    seg_metrics: SegMetrics = SegMetrics.brats_regions
    online_probe: bool = False
    dice_background: bool = True


@METHODS.register("cpcseg")
class CPCSegMethod(BaseMethod):
    """Encoder-decoder segmentation with a CPC branch on the encoder; labeled images train both, unlabeled ones CPC only.

    Training batches are ``{"labeled": batch, "unlabeled": batch}`` (either may be absent). The loss is
    Dice + cross-entropy on the labeled images plus ``cpc_weight`` x InfoNCE on every image. Validation
    (labeled batches) logs the same loss and Dice/HD95 per BraTS region. The CPC predictor is not part
    of ``network``, so the zoo publishes the encoder and decoder only.
    """

    Config = CPCSegConfig
    required_keys = ("image", "mask")
    output_activation = "softmax"
    training_data = "semi_supervised"
    usage_notes = (
        "The decoder's channels are softmax scores of the canonical BraTS labels: 0 background, 1 necrotic core, "
        "2 edema, 3 enhancing tumour (lightning_ssl.metrics.brats_labels.brats_regions turns them into whole tumour, tumour "
        "core and enhancing regions). The CPC predictor is not published."
    )
    citation = (
        "Iwasawa J, Hirano Y, Sugawara Y. Label-Efficient Multi-Task Segmentation using Contrastive Learning. "
        "MICCAI BrainLes 2020, LNCS 12658."
    )

    @classmethod
    def monitored(cls, method: Any) -> tuple[str, str]:
        """Validation Dice, higher is better: the segmentation score a fine-tuned model is chosen on (an all-background
        predictor scores 0), where the loss would mix in the CPC term."""
        return "val/dice", "max"

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        super().__init__(config, data_info, architecture)
        method = self.cfg.method
        if method.cpc_stride < 1 or method.cpc_patch_size < 1 or method.cpc_negatives < 1:
            raise ConfigError("method.cpc_patch_size, method.cpc_stride and method.cpc_negatives must be at least 1")
        self.cpc = CPCBranch(
            self.data_info.spatial_dims,
            self.network.encoder.out_channels,
            method.cpc_patch_size,
            method.cpc_stride,
            method.cpc_dim,
            method.predictor_blocks,
        )
        self.info_nce = InfoNCELoss(method.cpc_negatives)
        self.seg_loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=method.dice_background)
        self.val_regions = segmentation_scores(method.seg_metrics, method.seg_classes, self.data_info.spacing)

    @classmethod
    def output_channels(cls, method: Any, data_info: dict[str, Any]) -> int:
        """Segmentation classes (background included)."""
        return int(method["seg_classes"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Segmentation logits (B, seg_classes, *spatial)."""
        return self.network(images)

    def cpc_loss(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """InfoNCE of predicting the lower half of each image's patch grid from its upper half."""
        output = self.cpc(images, self.network.encoder)
        return self.info_nce(output.predictions, output.vectors, output.targets, generator)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """Dice + CE on ``labeled`` plus ``cpc_weight`` x CPC on ``labeled`` and ``unlabeled`` images."""
        labeled, unlabeled = batch.get("labeled"), batch.get("unlabeled")
        if labeled is None and unlabeled is None:
            raise KeyError(f"method 'cpcseg' needs a 'labeled' and/or 'unlabeled' batch; got keys {sorted(batch)}")
        images: list[torch.Tensor] = []
        terms: list[torch.Tensor] = []
        if labeled is not None:
            self.check_batch(labeled)
            seg = self.seg_loss(self(labeled["image"]), labeled["mask"].long())
            self.log("train/seg_loss", seg, batch_size=labeled["image"].shape[0])
            images.append(labeled["image"])
            terms.append(seg)
        if unlabeled is not None:
            images.append(unlabeled["image"])
        if self.cfg.method.cpc_weight:
            everything = torch.cat(images)
            cpc = self.cpc_loss(everything)
            self.log("train/cpc_loss", cpc, batch_size=everything.shape[0])
            terms.append(self.cfg.method.cpc_weight * cpc)
        if not terms:
            return None
        loss = torch.stack(terms).sum()
        self.log("train/loss", loss, prog_bar=True, batch_size=sum(x.shape[0] for x in images))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss (negatives fixed per batch, so epochs compare) and region metrics."""
        self.check_batch(batch)
        images, mask = batch["image"], batch["mask"].long()
        logits = self(images)
        loss = self.seg_loss(logits, mask)
        if self.cfg.method.cpc_weight:
            loss = loss + self.cfg.method.cpc_weight * self.cpc_loss(images, self.validation_generator(images.device, batch_idx))
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=images.shape[0])
        self.val_regions.update(logits.argmax(dim=1, keepdim=True), mask)

    def preview(self, batch: dict[str, Any], dataloader_idx: int = 0) -> Preview:
        """The last channel (FLAIR for BraTS), the true and the predicted labels as grey levels: BraTS regions nested
        (edema 1/3, tumour core 2/3, enhancing tumour white), other labels k / (classes - 1)."""
        self.check_batch(batch)
        images = batch["image"]
        labels = {"true regions": batch["mask"].long(), "predicted regions": self(images).argmax(dim=1, keepdim=True)}
        channel = self.data_info.channel_names[-1] if self.data_info.channel_names else "last channel"
        if self.cfg.method.seg_metrics == "brats_regions":
            grey = {name: brats_regions(k, 1).sum(1, keepdim=True) / 3 for name, k in labels.items()}
        else:
            grey = {name: k.float() / max(self.cfg.method.seg_classes - 1, 1) for name, k in labels.items()}
        return Preview("image_true_predicted_regions", {channel: images[:, -1:], **grey})

    def on_validation_epoch_end(self) -> None:
        """Dice and HD95 per region (wt, tc, et) and the mean Dice over every validation sample of every process."""
        log_scores(self, self.val_regions, "val", prog_bar="dice")
