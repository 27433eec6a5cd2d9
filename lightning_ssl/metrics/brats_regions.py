"""Dice and 95% Hausdorff distance per BraTS region (whole tumour, tumour core, enhancing tumour), through MONAI."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from lightning_ssl.metrics.brats_labels import CONVENTIONS, brats_regions

REGION_KEYS = ("wt", "tc", "et")
"""Short names of the regions of ``lightning_ssl.metrics.brats_labels.REGION_NAMES``, in that order."""


def to_canonical(labels: torch.Tensor, convention: str) -> torch.Tensor:
    """Label maps in a BraTS ``convention`` ("2017": 0,1,2,4; "2023": 0,1,2,3) as canonical labels (0,1,2,3)."""
    mapping = CONVENTIONS[convention]
    known = torch.tensor(sorted(mapping), device=labels.device)
    if not torch.isin(labels, known).all():
        raise ValueError(f"label values {labels.unique().tolist()} are not all in the BraTS {convention} convention {sorted(mapping)}")
    lookup = torch.zeros(max(mapping) + 1, dtype=torch.uint8, device=labels.device)
    for source, target in mapping.items():
        lookup[source] = target
    return lookup[labels.long()]


def region_scores(
    predicted: torch.Tensor, target: torch.Tensor, spacing: Sequence[float] | None = None, convention: str | None = None
) -> torch.Tensor:
    """Per-sample (B, 3 regions, 2) Dice and HD95 of label maps (B, 1, *spatial), canonical unless ``convention`` is given.

    Empty regions follow the BraTS challenge's rules: both empty gives Dice 1 and HD95 0; exactly one
    empty gives Dice 0 and, for HD95, the image's diagonal (the largest possible distance; BraTS uses
    373.13 mm, the diagonal of its volumes). HD95 is in ``spacing`` units (voxels when None).
    A label value outside the ``convention`` raises ValueError.
    """
    if convention is not None:
        predicted, target = to_canonical(predicted, convention), to_canonical(target, convention)
    predicted_regions, target_regions = brats_regions(predicted, channel_dim=1).float(), brats_regions(target, channel_dim=1).float()
    dice = compute_dice(predicted_regions, target_regions, include_background=True, ignore_empty=False)
    with warnings.catch_warnings():
        # MONAI warns about every empty region; the rules above settle those cases.
        warnings.simplefilter("ignore")
        hd95 = compute_hausdorff_distance(
            predicted_regions, target_regions, include_background=True, percentile=95, spacing=spacing
        )
    spatial = tuple(range(2, predicted_regions.dim()))
    predicted_empty, target_empty = predicted_regions.sum(dim=spatial) == 0, target_regions.sum(dim=spatial) == 0
    steps = spacing if spacing is not None else [1.0] * len(spatial)
    diagonal = math.dist([0.0] * len(spatial), [(n - 1) * s for n, s in zip(predicted.shape[2:], steps)])
    hd95 = hd95.to(dice.device).float()
    hd95 = torch.where(predicted_empty & target_empty, torch.zeros_like(hd95), hd95)
    hd95 = torch.where(predicted_empty ^ target_empty, torch.full_like(hd95, diagonal), hd95)
    return torch.stack([dice.float(), hd95], dim=-1)


class BraTSRegionMetrics(Metric):
    """Mean Dice and HD95 per BraTS region over every sample seen, on every process.

    ``compute`` gathers the per-sample scores of all processes (which may hold different numbers of
    samples: torchmetrics pads and trims) and returns ``dice_wt``, ``dice_tc``, ``dice_et``,
    ``hd95_wt``, ``hd95_tc``, ``hd95_et`` and ``dice`` (mean over regions).
    """

    full_state_update = False

    def __init__(self, spacing: Sequence[float] | None = None, convention: str | None = None) -> None:
        super().__init__()
        self.spacing = list(spacing) if spacing is not None else None
        self.convention = convention
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """Score label maps (B, 1, *spatial)."""
        self.scores.append(region_scores(predicted, target, self.spacing, self.convention))

    def compute(self) -> dict[str, torch.Tensor]:
        """The mean of every score over every sample of every process."""
        scores = dim_zero_cat(self.scores)
        means = scores.mean(dim=0)
        results = {f"{metric}_{region}": means[r, m] for m, metric in enumerate(("dice", "hd95")) for r, region in enumerate(REGION_KEYS)}
        results["dice"] = means[:, 0].mean()
        return results
