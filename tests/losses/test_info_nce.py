"""InfoNCE of CPC: true targets score lower than shuffled ones, negatives come from the same image, gradient flows."""

import torch

from lightning_ssl.losses.info_nce import InfoNCELoss, info_nce, sample_negatives


def _vectors(batch: int = 2, grid: int = 12, dim: int = 32) -> torch.Tensor:
    return torch.randn(batch, grid, dim, generator=torch.Generator().manual_seed(0))


def test_true_targets_give_a_lower_loss_than_shuffled_ones():
    vectors = _vectors()
    targets = torch.arange(6, 12)
    true = vectors[:, targets]
    shuffled = true[:, torch.randperm(6, generator=torch.Generator().manual_seed(1))]
    assert info_nce(true, vectors, targets) < 0.1 * info_nce(shuffled, vectors, targets)


def test_negatives_are_other_cells_of_the_same_image_without_repeats():
    targets = torch.tensor([3, 5, 7])
    negatives = sample_negatives(batch=4, targets=targets, grid_size=10, count=20)
    assert negatives.shape == (4, 3, 9)  # only 9 other cells exist
    assert not (negatives == targets[None, :, None]).any()
    assert all(row.unique().numel() == row.numel() for row in negatives.flatten(0, 1))
    assert sample_negatives(2, targets, 30, 20).shape == (2, 3, 20)


def test_negatives_never_mix_images():
    # Image 1 predicts nothing (zero predictions): any gradient on its vectors would come from image 0's candidates.
    vectors = _vectors().requires_grad_()
    targets = torch.arange(6, 12)
    predictions = torch.stack([vectors[0, targets].detach(), torch.zeros(6, 32)])
    info_nce(predictions, vectors, targets).backward()
    assert vectors.grad[0].abs().sum() > 0 and torch.equal(vectors.grad[1], torch.zeros(12, 32))


def test_gradient_reaches_predictions_and_vectors():
    vectors = _vectors().requires_grad_()
    predictions = torch.randn(2, 6, 32, requires_grad=True)
    InfoNCELoss(num_negatives=5)(predictions, vectors, torch.arange(6, 12)).backward()
    assert predictions.grad.abs().sum() > 0 and vectors.grad.abs().sum() > 0


def test_a_fixed_generator_gives_the_same_loss():
    vectors, targets = _vectors(), torch.arange(6, 12)
    predictions = torch.randn(2, 6, 32)
    first = info_nce(predictions, vectors, targets, 3, torch.Generator().manual_seed(5))
    second = info_nce(predictions, vectors, targets, 3, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)
