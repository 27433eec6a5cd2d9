"""What every method logs when it scores a split: class scores, predicted-class counts, segmentation scores."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score
from torchmetrics.wrappers import ClasswiseWrapper

from lightning_ssl.errors import ConfigError
from lightning_ssl.metrics.brats_regions import BraTSRegionMetrics
from lightning_ssl.metrics.class_scores import ClassSegmentationMetrics
from lightning_ssl.schema import Choice


class SegMetrics(Choice):
    """How a segmentation is scored: Dice and HD95 per foreground class, or per BraTS region."""

    classes = "classes"
    brats_regions = "brats_regions"


def metric_name(text: str) -> str:
    """A class name as a metric-name fragment (``normal, benign`` -> ``normal_benign``)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_") or "class"


class PredictedClasses(Metric):
    """How many samples were predicted as each class, over every process: ``predicted_<class>`` counts.

    A split whose predictions all fall in one class shows a model that predicts one class for every image,
    whatever its AUC.
    """

    full_state_update = False

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = [metric_name(name) for name in names]
        self.add_state("counts", default=torch.zeros(len(self.names), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, target: torch.Tensor | None = None) -> None:
        """Count the argmax class of each row of (B, classes) scores (``target`` is not needed)."""
        self.counts += torch.bincount(probabilities.argmax(dim=1), minlength=len(self.names))

    def compute(self) -> dict[str, torch.Tensor]:
        """``predicted_<class>``: the number of samples predicted as that class."""
        return {f"predicted_{name}": count.float() for name, count in zip(self.names, self.counts)}


def classification_metrics(class_names: Sequence[str], stage: str) -> MetricCollection:
    """Accuracy, AUC, macro F1, per-class F1 and predicted-class counts of softmax scores, named ``<stage>/...``."""
    classes = len(class_names)
    names = [metric_name(name) for name in class_names]
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(classes, average="micro"),
            "auc": MulticlassAUROC(classes),
            "f1": MulticlassF1Score(classes, average="macro"),
            "f1_class": ClasswiseWrapper(MulticlassF1Score(classes, average=None), labels=names, prefix="f1_"),
            "predicted": PredictedClasses(class_names),
        },
        prefix=f"{stage}/",
        compute_groups=False,  # a shared state group would leave the class-wise F1 "never updated"
    )


def segmentation_scores(kind: str, classes: int, spacing: Sequence[float] | None = None) -> Metric:
    """Dice and HD95 per foreground class (``classes``) or per BraTS region (``brats_regions``: whole tumour, tumour
    core, enhancing; needs the 4 canonical BraTS labels)."""
    if kind == "brats_regions":
        if classes != 4:
            raise ConfigError("method.seg_metrics=brats_regions scores the 4 canonical BraTS labels: set method.seg_classes=4")
        return BraTSRegionMetrics(spacing)
    return ClassSegmentationMetrics(classes)


def log_scores(module: pl.LightningModule, scores: Metric | MetricCollection, stage: str, prog_bar: str | None = None) -> None:
    """Compute ``scores`` over every sample of every process, log each value as ``<stage>/<name>`` (a collection's
    names are already prefixed) and reset them; nothing when they saw no sample."""
    metrics = scores.values() if isinstance(scores, MetricCollection) else [scores]
    if not any(metric.update_called for metric in metrics):
        return
    values = scores.compute()
    prefix = "" if isinstance(scores, MetricCollection) else f"{stage}/"
    for name, value in values.items():
        module.log(f"{prefix}{name}", value, prog_bar=name == prog_bar)
    scores.reset()
