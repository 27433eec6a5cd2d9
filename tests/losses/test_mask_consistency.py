"""MultiMix's segmentation consistency is a real divergence (the authors' softmax over one channel is always zero)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_ssl.losses.mask_consistency import mask_consistency


def _authors_term(labeled: torch.Tensor, unlabeled: torch.Tensor) -> torch.Tensor:
    """The published code's ``kl_divergence_seg``: a softmax over the one output channel."""
    p = F.softmax(labeled, dim=1)
    return (p * (F.log_softmax(labeled, dim=1) - F.log_softmax(unlabeled, dim=1))).mean()


@pytest.mark.parametrize("channels", [1, 2])
def test_zero_when_every_prediction_agrees(channels: int) -> None:
    logits = torch.randn(1, channels, 16, 16)
    value = mask_consistency(logits.expand(3, -1, -1, -1), logits.expand(5, -1, -1, -1))
    assert float(value) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 2])
def test_positive_for_different_predictions_where_the_published_term_is_zero(channels: int) -> None:
    torch.manual_seed(0)
    unlabeled, labeled = torch.randn(4, channels, 16, 16), torch.randn(2, channels, 16, 16) + 2.0
    assert float(mask_consistency(unlabeled, labeled)) > 0.1
    if channels == 1:
        assert float(_authors_term(labeled[:1], unlabeled[:1])) == 0.0


def test_gradient_reaches_the_unlabeled_prediction_only() -> None:
    unlabeled = torch.randn(2, 1, 8, 8, requires_grad=True)
    labeled = torch.randn(2, 1, 8, 8, requires_grad=True)
    mask_consistency(unlabeled, labeled).backward()
    assert unlabeled.grad is not None and float(unlabeled.grad.abs().sum()) > 0
    assert labeled.grad is None


def test_moving_toward_the_labeled_prediction_lowers_it() -> None:
    labeled = torch.full((1, 1, 8, 8), 3.0)
    far, near = torch.full((1, 1, 8, 8), -3.0), torch.full((1, 1, 8, 8), 2.0)
    assert mask_consistency(near, labeled) < mask_consistency(far, labeled)


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="same channels and spatial size"):
        mask_consistency(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 16, 16))
