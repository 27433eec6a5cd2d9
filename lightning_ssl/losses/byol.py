"""BYOL's loss: normalised mean squared error between an online prediction and a target projection."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalized_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z); no gradient flows into ``target``."""
    return (2 - 2 * F.cosine_similarity(prediction, target.detach(), dim=-1)).mean()
