"""Downstream training from scratch or from a zoo entry: classification or segmentation, fine-tuned or linear-probed.

The run (``lightning_ssl.train.finetune``) gives the method its network (the zoo entry's architecture when
``method.init=zoo:NAME``) and copies the entry's weights in; the method itself never reads the zoo, so a fine-tuned
checkpoint loads on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from torch import nn
from torchmetrics import Metric, SumMetric
from torchmetrics.classification import BinaryROC

from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.methods.preview import Preview, label_map
from lightning_ssl.metrics.evaluation import SegMetrics, classification_metrics, log_scores, segmentation_scores
from lightning_ssl.models import ClassificationHead
from lightning_ssl.registry import METHODS
from lightning_ssl.schema import Choice, ConfigError, MethodConfig

STAGES = ("val", "test")
THRESHOLD_KEY = "decision_threshold"  # the two-class operating point chosen on validation, saved in checkpoints


class Task(Choice):
    classification = "classification"
    segmentation = "segmentation"


class Mode(Choice):
    finetune = "finetune"
    linear = "linear"


class ClassWeights(Choice):
    none = "none"
    balanced = "balanced"


class Threshold(Choice):
    validation = "validation"
    argmax = "argmax"


@dataclass
class FinetuneConfig(MethodConfig):
    """The downstream task, where the encoder (and decoder) start, and what trains.

    ``init``: ``scratch`` or ``zoo:NAME`` (``zoo:NAME@vK``); the network is then the entry's architecture.
    ``mode``: ``finetune`` trains everything (after ``warmup_epochs`` with the encoder frozen), ``linear`` freezes the
    encoder and trains a linear head (classification only). ``seg_classes``: output channels of a segmentation
    (background included). ``seg_metrics``: Dice and HD95 per foreground ``classes``, or per ``brats_regions`` (whole
    tumour, tumour core, enhancing; needs the 4 canonical BraTS labels, ``seg_classes=4``). ``monitor``: the
    validation metric the kept checkpoint is best on; ``auto`` is ``val/auc`` for classification and ``val/dice`` for
    segmentation (a model that predicts one class for every image cannot win either), ``val/loss`` also works.
    ``class_weights``: ``balanced`` weights the cross-entropy by the inverse class frequency of the labeled budget.
    ``sw_overlap``: how much neighbouring windows overlap (a fraction of the window) when a segmentation scores whole
    volumes larger than the training patch by sliding windows. ``sw_window``: the size of those windows (default: the
    training patch, the most accurate); a window at least as large as the volumes scores each in one zero-padded pass,
    faster but on context and padding the network never trained on (docs/datasets.md gives a measured cost).
    ``threshold``: the operating point of a two-class task at test: ``validation`` predicts the positive (second)
    class at or above the probability that maximises sensitivity + specificity (Youden's J) on the validation split,
    as scored by the kept checkpoint; ``argmax`` at 0.5. AUC does not depend on it; more than two classes use argmax.
    ``dice_background``: whether the Dice term of the segmentation loss counts the background class (MONAI's default)
    or the foreground classes only (nnU-Net's choice: a small lesion's Dice is not diluted by the background's).
    """

    name: str = "finetune"
    task: Task = Task.classification
    init: str = "scratch"
    mode: Mode = Mode.finetune
    warmup_epochs: int = 0
    head_hidden: int = 0
    seg_classes: int = 2
    seg_metrics: SegMetrics = SegMetrics.classes
    monitor: str = "auto"
    class_weights: ClassWeights = ClassWeights.none
    sw_overlap: float = 0.25
    sw_window: Optional[list[int]] = None
    threshold: Threshold = Threshold.validation
    online_probe: bool = False
    dice_background: bool = True


@METHODS.register("finetune")
class FinetuneMethod(BaseMethod):
    """A task network whose encoder (and, for segmentation, decoder) starts from a zoo entry or from scratch.

    Classification: encoder -> pooled features -> head, cross-entropy; accuracy, AUC, macro and per-class F1 and the
    count of each predicted class. Segmentation: the U-Net, Dice + cross-entropy; Dice and 95% Hausdorff distance per
    foreground class (MONAI), over the whole split on every process. A segmentation scores whole volumes (when the data
    gives them; ``evaluation_data``), by sliding windows of the training patch; a classification scores inputs of the
    training patch's size, which is what its pooled head was trained on.
    """

    Config = FinetuneConfig
    training_data = "labeled"

    @classmethod
    def uses_decoder(cls, method: Any) -> bool:
        """Segmentation trains the decoder; classification only the encoder and a head."""
        return method["task"] == "segmentation"

    @classmethod
    def output_channels(cls, method: Any, data_info: dict[str, Any]) -> int:
        """Segmentation classes (background included)."""
        return int(method["seg_classes"])

    @classmethod
    def monitored(cls, method: Any) -> tuple[str, str]:
        """The metric of the kept checkpoint and whether higher is better."""
        metric = method["monitor"]
        if metric == "auto":
            metric = "val/dice" if method["task"] == "segmentation" else "val/auc"
        lower_is_better = metric.endswith("loss") or "hd95" in metric
        return metric, "min" if lower_is_better else "max"

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        method = config["method"]
        if method["task"] == "segmentation" and method["mode"] == "linear":
            raise ConfigError("method.mode=linear is a classification protocol: use method.mode=finetune for segmentation")
        if not 0 <= method.get("sw_overlap", FinetuneConfig.sw_overlap) < 1:
            raise ConfigError(f"method.sw_overlap={method['sw_overlap']} must be in [0, 1): the share of a window its neighbour overlaps")
        window = method.get("sw_window")
        if window is not None and (len(window) != len(data_info["patch_size"]) or min(window) < 1):
            raise ConfigError(f"method.sw_window={list(window)} must give a positive size for each of the "
                              f"{len(data_info['patch_size'])} dimensions of data.patch_size={list(data_info['patch_size'])}")
        super().__init__(config, data_info, architecture)
        if self.segmentation:
            self.required_keys = ("image", "mask")
            self.loss = DiceCELoss(to_onehot_y=True, softmax=True, include_background=self.cfg.method.dice_background)
            self.scores = nn.ModuleDict({stage: self._segmentation_scores() for stage in STAGES})
        else:
            self.required_keys = ("image", "label")
            classes = self.data_info.num_classes
            if not classes:
                raise ConfigError(f"data {self.cfg.data.name!r} has no class labels: use method.task=segmentation")
            linear = self.cfg.method.mode == "linear"
            hidden = 0 if linear else self.cfg.method.head_hidden
            self.head = ClassificationHead(self.network.encoder.out_channels, classes, hidden, standardise=linear)
            self.scores = nn.ModuleDict({stage: classification_metrics(self.class_names(), stage) for stage in STAGES})
            self.register_buffer("class_weight", torch.ones(classes))
        # the validation ROC that sets a two-class test's operating point (None: the test keeps argmax)
        self.roc = BinaryROC() if not self.segmentation and self._validation_threshold(method) else None
        self.threshold: float | None = None
        self.samples = nn.ModuleDict({stage: SumMetric() for stage in STAGES})
        if self.cfg.method.mode == "linear":
            self.network.encoder.requires_grad_(False)

    def _validation_threshold(self, method: dict[str, Any]) -> bool:
        return self.data_info.num_classes == 2 and method.get("threshold", Threshold.validation) == Threshold.validation

    @property
    def segmentation(self) -> bool:
        """Whether the task is segmentation."""
        return self.cfg.method.task == "segmentation"

    @property
    def evaluation_data(self) -> str:
        """Whole ``volumes`` for a segmentation, ``patches`` for a classification."""
        return "volumes" if self.segmentation else "patches"

    def setup(self, stage: str) -> None:
        """With ``class_weights=balanced``, weight each class by the inverse of its share of the labeled budget."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage != "fit" or self.segmentation or self.cfg.method.class_weights != "balanced" or datamodule is None:
            return
        labeled, _ = datamodule.budget_indices()
        counts = torch.bincount(torch.as_tensor(datamodule.train_labels()[labeled]), minlength=self.class_weight.numel())
        self.class_weight.copy_(counts.sum() / (counts.numel() * counts.clamp(min=1)))

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

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Segmentation logits of inputs of any size: those larger (or smaller) than the training patch by MONAI's
        sliding windows (``method.sw_window``, default the patch; ``method.sw_overlap``; Gaussian-weighted,
        ``data.batch_size`` windows at a time); the volumes (B, C, X, Y, Z) given to a 2D network slice by slice."""
        patch = [int(s) for s in self.data_info.patch_size]
        if images.dim() == len(patch) + 3:
            slices = images.movedim(-1, 1).flatten(0, 1)
            return self._windows(slices, patch).unflatten(0, (images.shape[0], -1)).movedim(1, -1)
        if list(images.shape[2:]) == patch:
            return self(images)
        return self._windows(images, patch)

    def _windows(self, images: torch.Tensor, patch: list[int]) -> torch.Tensor:
        overlap = self.cfg.method.get("sw_overlap", FinetuneConfig.sw_overlap)  # checkpoints from before the key
        window = [int(s) for s in self.cfg.method.get("sw_window") or patch]
        batch = int(self.cfg.data.batch_size)
        return sliding_window_inference(images, window, batch, self, overlap=overlap, mode="gaussian")

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.check_batch(batch)
        target = batch["mask"].long() if self.segmentation else batch["label"].long()
        logits = self.segment(batch["image"]) if self.segmentation else self(batch["image"])
        loss = self.loss(logits, target) if self.segmentation else F.cross_entropy(logits, target, weight=self.class_weight)
        return logits, target, loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Cross-entropy (classification) or Dice + cross-entropy (segmentation)."""
        _, _, loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        logits, target, loss = self._loss(batch)
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["image"].shape[0])
        self.samples[stage].update(target.shape[0])
        self.log(f"{stage}/samples", self.samples[stage], on_step=False, on_epoch=True)
        if self.segmentation:
            self.scores[stage].update(logits.argmax(dim=1, keepdim=True), target)
            return
        if stage == "val" and self.roc is not None:
            self.roc.update(logits.softmax(dim=1)[:, 1], target)
        if stage == "test" and self.threshold is not None:
            logits = operating_point_logits(logits, self.threshold)
        self.scores[stage].update(logits.softmax(dim=1), target)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and metrics on the validation split."""
        self._evaluate(batch, "val")

    def preview(self, batch: dict[str, Any], dataloader_idx: int = 0) -> Preview:
        """Segmentation: the images, predicted and true label maps (background black, the last class white).
        Classification: the images, each labelled with its true and predicted class."""
        self.check_batch(batch)
        images = batch["image"]
        logits = self.segment(images) if self.segmentation else self(images)
        if self.segmentation:
            classes = self.cfg.method.seg_classes
            predicted = logits.argmax(dim=1, keepdim=True)
            rows = {"image": images, "predicted": label_map(predicted, classes), "true": label_map(batch["mask"], classes)}
            return Preview("image_predicted_true_mask", rows)
        names = self.class_names()
        pairs = zip(batch["label"].tolist(), logits.argmax(dim=1).tolist())
        return Preview("image_true_predicted_class", {"image": images}, [f"true {names[t]}, predicted {names[p]}" for t, p in pairs])

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss and metrics on the test split."""
        self._evaluate(batch, "test")

    def _segmentation_scores(self) -> Metric:
        method = self.cfg.method
        return segmentation_scores(method.seg_metrics, method.seg_classes, self.data_info.spacing)

    def on_validation_epoch_end(self) -> None:
        """Scores of the validation split (at argmax), and the operating point they give the test split."""
        log_scores(self, self.scores["val"], "val")
        if self.roc is not None and self.roc.update_called:
            self.threshold = youden_threshold(*self.roc.compute())
            self.roc.reset()
            if self.threshold is not None:  # None: no validation point beats chance, the test keeps argmax
                self.log("val/threshold", self.threshold, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the operating point with the weights it was chosen for."""
        checkpoint[THRESHOLD_KEY] = self.threshold

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the operating point saved with the weights (a checkpoint from before it keeps the current one)."""
        if self.roc is not None and checkpoint.get(THRESHOLD_KEY) is not None:
            self.threshold = float(checkpoint[THRESHOLD_KEY])

    def on_test_epoch_end(self) -> None:
        """Scores of the test split, at the operating point chosen on validation (``test/threshold``)."""
        log_scores(self, self.scores["test"], "test")
        if self.threshold is not None:
            self.log("test/threshold", self.threshold, sync_dist=True)


def youden_threshold(false_positive_rate: torch.Tensor, true_positive_rate: torch.Tensor, thresholds: torch.Tensor) -> float | None:
    """A positive-class probability between the ROC point that maximises sensitivity + specificity and the next lower
    score (so rounding cannot move a validation sample across it); ``None`` (argmax) when no point beats chance."""
    gain = true_positive_rate - false_positive_rate
    best = int(gain.argmax())
    if gain[best] <= 0:
        return None
    return float(((thresholds[best] + thresholds[best + 1]) / 2).clamp(1e-6, 1 - 1e-6))


def operating_point_logits(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Two-class logits shifted so that argmax predicts the second class exactly where its softmax probability is at
    least ``threshold``; the ranking of the samples, hence the AUC, is unchanged."""
    shift = torch.logit(torch.tensor(threshold, dtype=logits.dtype, device=logits.device))
    return torch.stack([logits[:, 0], logits[:, 1] - shift], dim=1)
