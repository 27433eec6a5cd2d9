"""Downstream training from scratch or from a zoo entry: classification or segmentation, fine-tuned or linear-probed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn
from torchmetrics import MetricCollection, SumMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
)

import zoo
from lightning_ssl.config import ConfigError, MethodConfig
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.metrics.brats_regions import BraTSRegionMetrics
from lightning_ssl.metrics.class_scores import ClassSegmentationMetrics
from lightning_ssl.models import ClassificationHead

log = logging.getLogger(__name__)

TASKS = ("classification", "segmentation")
MODES = ("finetune", "linear")
SEG_METRICS = ("classes", "brats_regions")
ZOO_PREFIX = "zoo:"


@dataclass
class FinetuneConfig(MethodConfig):
    """The downstream task, where the encoder (and decoder) start, and what trains.

    ``init``: ``scratch`` or ``zoo:NAME`` (``zoo:NAME@vK``); the network is then the entry's
    architecture. ``mode``: ``finetune`` trains everything (after ``warmup_epochs`` with the encoder
    frozen), ``linear`` freezes the encoder and trains a linear head (classification only).
    ``seg_classes``: output channels of a segmentation (background included). ``seg_metrics``: Dice and
    HD95 per foreground ``classes``, or per ``brats_regions`` (whole tumour, tumour core, enhancing;
    needs the 4 canonical BraTS labels, ``seg_classes=4``).
    """

    name: str = "finetune"
    task: str = "classification"
    init: str = "scratch"
    mode: str = "finetune"
    warmup_epochs: int = 0
    head_hidden: int = 0
    seg_classes: int = 2
    seg_metrics: str = "classes"
    online_probe: bool = False


def _zoo_name(init: str) -> str | None:
    if init == "scratch":
        return None
    if not init.startswith(ZOO_PREFIX) or len(init) == len(ZOO_PREFIX):
        raise ConfigError(f"method.init={init!r} is neither 'scratch' nor 'zoo:NAME' (e.g. zoo:simclr_pneumoniamnist)")
    return init[len(ZOO_PREFIX) :]


class FinetuneMethod(BaseMethod):
    """A task network whose encoder (and, for segmentation, decoder) starts from a zoo entry or from scratch.

    Classification: encoder -> pooled features -> head, cross-entropy; accuracy, AUC and macro F1.
    Segmentation: the U-Net, Dice + cross-entropy; Dice and 95% Hausdorff distance per foreground
    class (MONAI), over the whole split on every process.
    """

    Config = FinetuneConfig

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any]) -> None:
        method = config["method"]
        if method["task"] not in TASKS or method["mode"] not in MODES:
            raise ConfigError(f"method.task must be one of {TASKS} and method.mode one of {MODES}")
        if method["seg_metrics"] not in SEG_METRICS:
            raise ConfigError(f"method.seg_metrics={method['seg_metrics']!r} is not one of {', '.join(SEG_METRICS)}")
        if method["seg_metrics"] == "brats_regions" and method["seg_classes"] != 4:
            raise ConfigError("method.seg_metrics=brats_regions scores the 4 canonical BraTS labels: set method.seg_classes=4")
        if method["task"] == "segmentation" and method["mode"] == "linear":
            raise ConfigError("method.mode=linear is a classification protocol: use method.mode=finetune for segmentation")
        self.trains_decoder = method["task"] == "segmentation"
        self.entry = _zoo_name(method["init"])
        super().__init__(config, data_info)
        if self.segmentation:
            self.required_keys = ("image", "mask")
            self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
            self.seg_scores = nn.ModuleDict({stage: self._segmentation_scores() for stage in ("val", "test")})
        else:
            self.required_keys = ("image", "label")
            classes = self.data_info.num_classes
            if not classes:
                raise ConfigError(f"data {self.cfg.data.name!r} has no class labels: use method.task=segmentation")
            linear = self.cfg.method.mode == "linear"
            hidden = 0 if linear else self.cfg.method.head_hidden
            self.head = ClassificationHead(self.network.encoder.out_channels, classes, hidden, standardise=linear)
            self.metrics = nn.ModuleDict({stage: self._classification_metrics(classes, stage) for stage in ("val", "test")})
        self.samples = nn.ModuleDict({stage: SumMetric() for stage in ("val", "test")})
        self.init_report = self._load_pretrained()
        if self.cfg.method.mode == "linear":
            self.network.encoder.requires_grad_(False)

    @property
    def segmentation(self) -> bool:
        """Whether the task is segmentation."""
        return self.cfg.method.task == "segmentation"

    def network_out_channels(self) -> int:
        """Segmentation classes (background included)."""
        return self.cfg.method.seg_classes

    def _architecture(self) -> dict[str, Any]:
        if self.entry is None:
            return super()._architecture()
        architecture = zoo.metadata(self.entry)["architecture"]
        kwargs = dict(architecture["kwargs"])
        for key in ("spatial_dims", "in_channels"):
            given = getattr(self.data_info, key)
            if key in kwargs and kwargs[key] != given:
                raise ConfigError(f"zoo entry {self.entry!r} was trained with {key}={kwargs[key]} but the data has {given}")
        if "out_channels" in kwargs:
            kwargs["out_channels"] = self.network_out_channels()
        return {"name": architecture["name"], "kwargs": kwargs}

    @staticmethod
    def _classification_metrics(classes: int, stage: str) -> MetricCollection:
        return MetricCollection(
            {
                "acc": MulticlassAccuracy(classes, average="micro"),
                "auc": MulticlassAUROC(classes),
                "f1": MulticlassF1Score(classes, average="macro"),
            },
            prefix=f"{stage}/",
        )

    def _load_pretrained(self) -> dict[str, Any]:
        """Copy the zoo entry's encoder (and decoder where shapes fit) into the network; what was loaded."""
        if self.entry is None:
            return {"init": "scratch"}
        report = {"init": self.entry, "encoder": str(zoo.load_into(self.network.encoder, self.entry, part="encoder"))}
        if self.trains_decoder:
            report["decoder"] = self._load_decoder()
        log.info("initialised from the zoo: %s", report)
        return report

    def _load_decoder(self) -> str:
        try:
            weights = zoo.load(self.entry, part="decoder").state_dict()
        except zoo.ZooError as error:
            log.warning("the decoder starts from scratch: %s", error)
            return "scratch (the entry has no decoder)"
        own = self.network.decoder.state_dict()
        fitting = {k: v for k, v in weights.items() if k in own and v.shape == own[k].shape}
        self.network.decoder.load_state_dict(fitting, strict=False)
        skipped = sorted(set(own) - set(fitting))
        return f"{len(fitting)} keys loaded, {len(skipped)} from scratch {skipped}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (B, classes) or segmentation logits (B, seg_classes, *spatial)."""
        if self.segmentation:
            return self.network(images)
        return self.head(self.network.encoder(images)[-1])

    def on_train_epoch_start(self) -> None:
        """Freeze the encoder during the warm-up epochs (and for a linear probe); BatchNorm statistics too."""
        frozen = self.cfg.method.mode == "linear" or self.current_epoch < self.cfg.method.warmup_epochs
        self.network.encoder.requires_grad_(not frozen)
        self.network.encoder.train(not frozen)

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        target = batch["mask"].long() if self.segmentation else batch["label"].long()
        logits = self(batch["image"])
        loss = self.loss(logits, target) if self.segmentation else F.cross_entropy(logits, target)
        return logits, target, loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Cross-entropy (classification) or Dice + cross-entropy (segmentation)."""
        self.check_batch(batch)
        _, _, loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        self.check_batch(batch)
        logits, target, loss = self._loss(batch)
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["image"].shape[0])
        self.samples[stage].update(target.shape[0])
        self.log(f"{stage}/samples", self.samples[stage], on_step=False, on_epoch=True)
        if self.segmentation:
            self.seg_scores[stage].update(logits.argmax(dim=1, keepdim=True), target)
        else:
            metrics = self.metrics[stage]
            metrics.update(logits.softmax(dim=1), target)
            self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=target.shape[0])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and metrics on the validation split."""
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and metrics on the test split."""
        self._evaluate(batch, "test")

    def _segmentation_scores(self) -> ClassSegmentationMetrics | BraTSRegionMetrics:
        if self.cfg.method.seg_metrics == "brats_regions":
            return BraTSRegionMetrics(self.data_info.spacing)
        return ClassSegmentationMetrics(self.cfg.method.seg_classes)

    def _segmentation_metrics(self, stage: str) -> None:
        """Dice and HD95 per foreground class (or BraTS region) over every sample of every process."""
        scores = self.seg_scores[stage]
        if scores.update_count:
            for name, value in scores.compute().items():
                self.log(f"{stage}/{name}", value)
            scores.reset()

    def on_validation_epoch_end(self) -> None:
        """Segmentation metrics of the validation split."""
        if self.segmentation:
            self._segmentation_metrics("val")

    def on_test_epoch_end(self) -> None:
        """Segmentation metrics of the test split."""
        if self.segmentation:
            self._segmentation_metrics("test")
