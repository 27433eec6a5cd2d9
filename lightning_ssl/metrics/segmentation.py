"""Binary segmentation metrics of MultiMix: Dice, Jaccard, average Hausdorff distance, SSIM, precision and recall.

Each is computed per image by MONAI or torchmetrics and averaged over every image of every process: the per-image
values are a torchmetrics ``cat`` state, gathered across DDP ranks by ``compute``. Averaging per-image scores (not
pooling pixels over the split) is what the MultiMix papers report.

Conventions: an image whose reference mask is empty scores Dice/Jaccard 1 when the prediction is empty too and 0
otherwise; precision, recall and the Hausdorff distance are undefined (NaN) when a mask they need is empty, and NaNs
are left out of the mean. The average Hausdorff distance (Taha & Hanbury 2015) is
``max(d(P, R), d(R, P))``, with ``d(A, B)`` the mean distance from the boundary pixels of ``A`` to the boundary of
``B`` (MONAI's directed average surface distance), in pixels.
"""

from __future__ import annotations

import warnings

import torch
from monai.metrics import compute_average_surface_distance, compute_dice, compute_iou
from monai.metrics.confusion_matrix import compute_confusion_matrix_metric, get_confusion_matrix
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.utilities import dim_zero_cat

SEGMENTATION_METRICS = ("dice", "jaccard", "avg_hausdorff", "ssim", "precision", "recall")


def average_hausdorff(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) symmetric average Hausdorff distance in pixels between binary masks (B, 1, *spatial); NaN if one is empty."""
    with warnings.catch_warnings():
        # MONAI warns on every empty mask (and about one of its own deprecated arguments); empty masks give NaN here
        warnings.filterwarnings("ignore", message=".*is all 0.*")
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*")
        forward = compute_average_surface_distance(predicted, target, include_background=True, symmetric=False)
        backward = compute_average_surface_distance(target, predicted, include_background=True, symmetric=False)
    distance = torch.maximum(forward, backward)[:, 0].float()
    return distance.masked_fill(~torch.isfinite(distance), float("nan"))


def segmentation_scores(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 6) per-image scores in the order of ``SEGMENTATION_METRICS`` for binary masks (B, 1, *spatial)."""
    if predicted.shape != target.shape or predicted.shape[1] != 1:
        raise ValueError(
            f"expected binary masks (B, 1, *spatial) of one shape, got {tuple(predicted.shape)} and {tuple(target.shape)}"
        )
    predicted, target = (predicted > 0).float(), (target > 0).float()
    confusion = get_confusion_matrix(predicted, target, include_background=True)
    scores = [
        compute_dice(predicted, target, include_background=True, ignore_empty=False)[:, 0],
        compute_iou(predicted, target, include_background=True, ignore_empty=False)[:, 0],
        average_hausdorff(predicted, target),
        structural_similarity_index_measure(predicted, target, data_range=1.0, reduction="none"),
        compute_confusion_matrix_metric("precision", confusion)[:, 0],
        compute_confusion_matrix_metric("sensitivity", confusion)[:, 0],
    ]
    return torch.stack([score.float().to(predicted.device) for score in scores], dim=1)


class BinarySegmentationMetrics(Metric):
    """Dice, Jaccard, average Hausdorff distance, SSIM, precision and recall of binary masks, averaged per image over
    every image of every process; ``compute`` returns ``{name: value}``."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """Add the per-image scores of predicted and reference binary masks (B, 1, *spatial)."""
        self.scores.append(segmentation_scores(predicted, target))

    def compute(self) -> dict[str, torch.Tensor]:
        """Mean of each metric over the images seen (NaN-valued images left out)."""
        scores = dim_zero_cat(self.scores).reshape(-1, len(SEGMENTATION_METRICS))
        return {name: torch.nanmean(scores[:, column]) for column, name in enumerate(SEGMENTATION_METRICS)}
