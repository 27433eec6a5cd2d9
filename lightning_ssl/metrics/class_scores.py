"""Dice and 95% Hausdorff distance per foreground class of label maps, through MONAI, over every process."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.metrics import compute_dice, compute_hausdorff_distance
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class ClassSegmentationMetrics(Metric):
    """Mean Dice and HD95 of each foreground class over every sample seen, on every process.

    Per-sample scores are a ``cat`` state, so ``compute`` gathers them from processes holding different
    numbers of samples. A class absent from a sample's reference (Dice) or from either map (HD95) leaves
    that sample out of the class's mean. ``compute`` returns ``dice_class<k>``, ``hd95_class<k>`` and
    ``dice`` (mean over classes and samples).
    """

    full_state_update = False

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """Score label maps (B, 1, *spatial) with values in [0, classes)."""
        onehot = [F.one_hot(labels[:, 0].long(), self.classes).movedim(-1, 1) for labels in (predicted, target)]
        dice = compute_dice(*onehot, include_background=False, ignore_empty=True).float()
        hd95 = compute_hausdorff_distance(*onehot, include_background=False, percentile=95).float().to(dice.device)
        scores = torch.stack([dice, hd95], dim=-1)
        self.scores.append(scores.masked_fill(~torch.isfinite(scores), float("nan")))

    def compute(self) -> dict[str, torch.Tensor]:
        """The NaN-skipping mean of every score over every sample of every process."""
        scores = dim_zero_cat(self.scores).reshape(-1, self.classes - 1, 2)
        results = {
            f"{metric}_class{index + 1}": torch.nanmean(scores[:, index, column])
            for column, metric in enumerate(("dice", "hd95"))
            for index in range(self.classes - 1)
        }
        results["dice"] = torch.nanmean(scores[..., 0])
        return results
