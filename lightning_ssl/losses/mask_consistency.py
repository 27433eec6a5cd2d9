"""MultiMix's segmentation consistency: the KL divergence between predicted mask distributions of unlabeled and labeled images.

The authors' code takes a softmax over a one-channel output, which is 1 everywhere, so their term is identically
zero. Here each pixel's prediction is a real distribution: a Bernoulli (foreground probability = sigmoid of a
one-channel logit) or a categorical (softmax over two or more channels).

What is compared: MultiMix pairs the i-th unlabeled with the i-th labeled image of the step, pixel by pixel, as
KL(labeled || unlabeled). Pairing by batch position needs equal batch sizes and is arbitrary, so the reference
here is the labeled batch's mean predicted mask distribution; KL(mean labeled || unlabeled) has the same gradient
for the unlabeled predictions as the average of the KL over every (labeled, unlabeled) pair. The reference is
detached: the labeled predictions are the anchor (trained by the Dice loss), and the unlabeled ones move toward it.
No library loss does this (MONAI and torchmetrics compare a prediction with a target of the same image), hence our code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPSILON = 1e-6


def mask_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel log-probabilities (B, K, *spatial): two classes (background, foreground) for one-channel logits."""
    if logits.shape[1] == 1:
        return torch.cat([F.logsigmoid(-logits), F.logsigmoid(logits)], dim=1)
    return F.log_softmax(logits, dim=1)


def mask_consistency(unlabeled_logits: torch.Tensor, labeled_logits: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel KL(mean labeled mask distribution || each unlabeled one): zero when every prediction agrees.

    Logits are (B, C, *spatial) of the same C and spatial size (batch sizes may differ); C = 1 is a sigmoid
    foreground map, C >= 2 softmax classes. The labeled side is detached.
    """
    if unlabeled_logits.shape[1:] != labeled_logits.shape[1:]:
        raise ValueError(
            f"unlabeled logits {tuple(unlabeled_logits.shape)} and labeled logits {tuple(labeled_logits.shape)} "
            "must have the same channels and spatial size"
        )
    reference = mask_log_probs(labeled_logits.detach()).exp().mean(dim=0, keepdim=True).clamp(min=EPSILON)
    divergence = F.kl_div(mask_log_probs(unlabeled_logits), reference.log(), log_target=True, reduction="none")
    return divergence.sum(dim=1).mean()
