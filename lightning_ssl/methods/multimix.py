"""MultiMix (Haque et al., ISBI 2021 / MELBA 2021): semi-supervised joint classification and segmentation, one U-Net.

Classification: a pooled + dense branch on the encoder's bottleneck, cross-entropy on the labeled images (weak view)
plus FixMatch on the unlabeled ones: the weak view's prediction is a pseudo-label where its probability reaches
``threshold``, and the strong view is trained to predict it (weight ``lambda_unlabeled``).
Segmentation: the decoder, Dice loss on the labeled masks (weight ``alpha_dice``) and a real KL consistency between
the predicted mask distributions of unlabeled and labeled images (weight ``beta_consistency``; the authors' term is
identically zero, see ``lightning_ssl.losses.mask_consistency``).
Saliency bridge: |d(max class logit) / d(input)| of the classification branch, normalised per image to [0, 1],
concatenated with the image, average-pooled to the bottleneck's size, projected by a 1x1 conv to the bottleneck's
channels and added to the bottleneck before the first decoder stage. The map is computed with
``torch.autograd.grad(create_graph=False)``, so it is a constant for the optimiser (detached): segmentation losses
train the encoder through the decoder and the projection, not through how the saliency depends on the weights
(that would need a second-order backward). The zoo publishes the U-Net (``network.encoder``/``network.decoder``);
the classification branch and the bridge live outside ``network``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn
from torchmetrics import MeanMetric

from lightning_ssl.losses.mask_consistency import mask_consistency
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.methods.preview import Preview
from lightning_ssl.metrics.evaluation import classification_metrics, log_scores
from lightning_ssl.metrics.segmentation import BinarySegmentationMetrics
from lightning_ssl.models import ClassificationHead
from lightning_ssl.registry import METHODS
from lightning_ssl.schema import ConfigError, MethodConfig
from lightning_ssl.transforms.fixmatch import FixMatchViewConfig, FixMatchViews

TASKS = ("classification", "segmentation")
EVALUATION_KEYS = (("image", "label"), ("image", "mask"))
STAGES = ("val", "test")


@dataclass
class MultiMixConfig(MethodConfig):
    """Published weights: pseudo-label ``threshold`` 0.7, ``lambda_unlabeled`` 0.25, ``beta_consistency`` 0.01,
    ``alpha_dice`` 5. ``seg_channels``: 1 (sigmoid foreground) or 2 (softmax background/foreground).
    ``head_hidden``/``head_dropout``: the classification branch (0 hidden = pooled + one dense layer, as published)."""

    name: str = "multimix"
    threshold: float = 0.7
    lambda_unlabeled: float = 0.25
    beta_consistency: float = 0.01
    alpha_dice: float = 5.0
    seg_channels: int = 1
    head_hidden: int = 0
    head_dropout: float = 0.0
    views: FixMatchViewConfig = field(default_factory=FixMatchViewConfig)
    online_probe: bool = False


def pseudo_label_loss(
    weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch: (cross-entropy of the strong view against the weak view's argmax where its max probability
    reaches ``threshold``, averaged over the whole batch; the share of images kept)."""
    confidence, pseudo_labels = weak_logits.detach().softmax(dim=1).max(dim=1)
    kept = (confidence >= threshold).to(strong_logits.dtype)
    loss = (F.cross_entropy(strong_logits, pseudo_labels, reduction="none") * kept).mean()
    return loss, kept.mean()


class SaliencyBridge(nn.Module):
    """Image + saliency map, average-pooled to the bottleneck's size and projected (1x1 conv) to its channels."""

    def __init__(self, spatial_dims: int, in_channels: int, bottleneck_channels: int) -> None:
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.projection = conv(in_channels + 1, bottleneck_channels, kernel_size=1)

    def forward(self, images: torch.Tensor, saliency: torch.Tensor, bottleneck_size: torch.Size) -> torch.Tensor:
        """The tensor added to the bottleneck (B, bottleneck channels, *bottleneck_size)."""
        pooled = F.interpolate(torch.cat([images, saliency], dim=1), size=tuple(bottleneck_size), mode="area")
        return self.projection(pooled)


@METHODS.register("multimix")
class MultiMixMethod(BaseMethod):
    """One U-Net for classification (encoder branch) and segmentation (decoder), trained semi-supervised on
    ``data=multitask`` batches; see the module docstring."""

    Config = MultiMixConfig
    training_data = "semi_supervised"
    usage_notes = (
        "The decoder was trained with MultiMix's saliency bridge: a projection of the image and the classifier's "
        "saliency map added to the bottleneck before the first decoder stage. The classifier and the bridge are not "
        "published, so the decoder loaded from the zoo runs without that input: fine-tune it before using its masks."
    )
    output_activation = "sigmoid"
    citation = (
        "Haque A, Imran AAZ, Wang A, Terzopoulos D. MultiMix: Sparingly Supervised, Extreme Multitask Learning From "
        "Medical Images. ISBI 2021; Generalized Multi-Task Learning from Substantially Unlabeled Multi-Source Medical "
        "Image Data. MELBA 2021."
    )

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        method = config["method"]
        if method["seg_channels"] not in (1, 2):
            raise ConfigError(f"method.seg_channels={method['seg_channels']}: use 1 (sigmoid) or 2 (softmax) for binary masks")
        if data_info["spatial_dims"] != 2:
            raise ConfigError("MultiMix is a 2D method (its FixMatch views are 2D): use 2D data such as data=multitask")
        if not data_info.get("num_classes"):
            raise ConfigError(f"MultiMix needs class labels: data {config['data']['name']!r} has none (use data=multitask)")
        super().__init__(config, data_info, architecture)
        method, classes = self.cfg.method, self.data_info.num_classes
        encoder = self.network.encoder
        self.classifier = ClassificationHead(encoder.out_channels, classes, method.head_hidden, method.head_dropout)
        self.bridge = SaliencyBridge(self.data_info.spatial_dims, self.data_info.in_channels, encoder.out_channels)
        self.views = FixMatchViews(FixMatchViewConfig(**method.views))
        single = method.seg_channels == 1
        self.dice_loss = DiceLoss(sigmoid=single, softmax=not single, to_onehot_y=not single)
        self.cls_metrics = nn.ModuleDict({stage: classification_metrics(self.class_names(), stage) for stage in STAGES})
        self.seg_metrics = nn.ModuleDict({stage: BinarySegmentationMetrics() for stage in STAGES})
        self.eval_losses = nn.ModuleDict({f"{stage}_{task}": MeanMetric() for stage in STAGES for task in ("cls", "seg")})

    @classmethod
    def output_channels(cls, method: Any, data_info: dict[str, Any]) -> int:
        """Segmentation channels: 1 (sigmoid foreground) or 2 (softmax)."""
        return int(method["seg_channels"])

    @classmethod
    def activation(cls, method: Any) -> str:
        """Sigmoid for one foreground channel, softmax for two."""
        return "sigmoid" if method["seg_channels"] == 1 else "softmax"

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, classes) of the classification branch."""
        return self.classifier(self.network.encoder(images)[-1])

    def saliency_pass(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The encoder's feature maps and the saliency map (B, 1, *spatial) in [0, 1], detached.

        The features keep their graph when gradients are enabled (training), so one encoder pass serves both.
        """
        keep_graph = torch.is_grad_enabled()
        with torch.inference_mode(False), torch.enable_grad():
            # validation batches are inference tensors: a clone made here can be differentiated
            inputs = images.clone().requires_grad_(True)
            features = self.network.encoder(inputs)
            score = self.classifier(features[-1]).max(dim=1).values.sum()
            (gradient,) = torch.autograd.grad(score, inputs, retain_graph=keep_graph)
        saliency = gradient.abs().amax(dim=1, keepdim=True)
        saliency = saliency / saliency.flatten(1).amax(dim=1).clamp(min=1e-12).view(-1, *[1] * (saliency.ndim - 1))
        return (features if keep_graph else [f.detach() for f in features]), saliency

    def segment(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(segmentation logits (B, seg_channels, *spatial), saliency map (B, 1, *spatial))."""
        features, saliency = self.saliency_pass(images)
        extra = self.bridge(images, saliency, features[-1].shape[2:])
        return self.network.decoder(features, bottleneck_extra=extra), saliency

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits, segmentation logits) of the same images."""
        return self.classify(images), self.segment(images)[0]

    def foreground(self, logits: torch.Tensor) -> torch.Tensor:
        """Foreground probability (B, 1, *spatial)."""
        return logits.sigmoid() if logits.shape[1] == 1 else logits.softmax(dim=1)[:, 1:]

    def _require(self, part: dict[str, Any], keys: tuple[str, ...], name: str) -> None:
        missing = [key for key in keys if key not in part]
        if missing:
            raise KeyError(
                f"method multimix needs {name} batches with {list(keys)}; this one holds {sorted(part)} (use data=multitask)"
            )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Supervised + FixMatch classification, Dice + consistency segmentation on ``{task: {"labeled": ...,
        "unlabeled": ...}}`` batches (data=multitask); parts absent from the batch are skipped."""
        if not set(TASKS) & set(batch):
            raise KeyError(f"method multimix needs batches with some of {list(TASKS)} (data=multitask); got {sorted(batch)}")
        method = self.cfg.method
        classification, segmentation = batch.get("classification", {}), batch.get("segmentation", {})
        terms: dict[str, torch.Tensor] = {}
        sizes: dict[str, int] = {}
        if "labeled" in classification:
            part = classification["labeled"]
            self._require(part, ("image", "label"), "labeled classification")
            terms["cls"] = F.cross_entropy(self.classify(self.views.weak(part["image"])), part["label"].long())
            sizes["cls"] = part["image"].shape[0]
        if "unlabeled" in classification:
            images = classification["unlabeled"]["image"]
            with torch.no_grad():
                weak_logits = self.classify(self.views.weak(images))
            terms["pseudo"], kept = pseudo_label_loss(weak_logits, self.classify(self.views.strong(images)), method.threshold)
            sizes["pseudo"] = images.shape[0]
            self.log("train/pseudo_label_rate", kept, batch_size=images.shape[0])
        labeled_logits = None
        if "labeled" in segmentation:
            part = segmentation["labeled"]
            self._require(part, ("image", "mask"), "labeled segmentation")
            labeled_logits, _ = self.segment(part["image"])
            terms["dice"] = self.dice_loss(labeled_logits, part["mask"].float())
            sizes["dice"] = part["image"].shape[0]
        if "unlabeled" in segmentation and labeled_logits is not None:
            unlabeled_logits, _ = self.segment(segmentation["unlabeled"]["image"])
            terms["consistency"] = mask_consistency(unlabeled_logits, labeled_logits)
            sizes["consistency"] = unlabeled_logits.shape[0]
        weights = {
            "cls": 1.0,
            "pseudo": method.lambda_unlabeled,
            "dice": method.alpha_dice,
            "consistency": method.beta_consistency,
        }
        loss = sum(weights[name] * value for name, value in terms.items())
        for name, value in terms.items():
            self.log(f"train/{name}_loss", value, batch_size=sizes[name])
        self.log("train/loss", loss, prog_bar=True, batch_size=max(sizes.values()))
        return loss

    def _evaluate(self, batch: dict[str, Any], dataloader_idx: int, stage: str) -> None:
        self._require(batch, EVALUATION_KEYS[dataloader_idx], f"{stage} loader {dataloader_idx}")
        images = batch["image"]
        if dataloader_idx == 0:
            logits = self.classify(images)
            labels = batch["label"].long()
            self.eval_losses[f"{stage}_cls"].update(F.cross_entropy(logits, labels), weight=labels.shape[0])
            self.cls_metrics[stage].update(logits.softmax(dim=1), labels)
            return
        logits, _ = self.segment(images)
        mask = batch["mask"]
        self.eval_losses[f"{stage}_seg"].update(self.dice_loss(logits, mask.float()), weight=mask.shape[0])
        probability = self.foreground(logits)
        self.seg_metrics[stage].update((probability >= 0.5).to(mask.dtype), mask)

    def preview(self, batch: dict[str, Any], dataloader_idx: int = 0) -> Preview | None:
        """Segmentation batches (loader 1): the images, the classifier's saliency, the foreground probability, the true mask."""
        if dataloader_idx != 1:
            return None
        self._require(batch, EVALUATION_KEYS[1], "val loader 1")
        logits, saliency = self.segment(batch["image"])
        rows = {"image": batch["image"], "saliency": saliency, "foreground probability": self.foreground(logits)}
        return Preview("segmentation", {**rows, "true mask": batch["mask"].float()})

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Classification (loader 0) or segmentation (loader 1) loss and metrics on the validation splits."""
        self._evaluate(batch, dataloader_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        """Classification (loader 0) or segmentation (loader 1) loss and metrics on the test splits."""
        self._evaluate(batch, dataloader_idx, "test")

    def _log_epoch(self, stage: str) -> None:
        """Log the metrics gathered over every process, and ``{stage}/loss`` = CE + alpha x Dice loss."""
        log_scores(self, self.cls_metrics[stage], stage)
        log_scores(self, self.seg_metrics[stage], stage)
        losses = {task: self.eval_losses[f"{stage}_{task}"] for task in ("cls", "seg")}
        computed = {task: metric.compute() for task, metric in losses.items() if metric.update_called}
        values = {f"{stage}/{task}_loss": value for task, value in computed.items()}
        if computed:
            weights = {"cls": 1.0, "seg": self.cfg.method.alpha_dice}
            values[f"{stage}/loss"] = sum(weights[task] * value for task, value in computed.items())
        for metric in losses.values():
            metric.reset()
        self.log_dict(values, prog_bar=False)

    def on_validation_epoch_end(self) -> None:
        """Validation metrics of both tasks and the checkpoint-selection loss."""
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        """Test metrics of both tasks."""
        self._log_epoch("test")
