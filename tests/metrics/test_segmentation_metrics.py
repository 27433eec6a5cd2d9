"""Binary segmentation metrics: known values per image, empty masks, accumulation, gathering across processes."""

from __future__ import annotations

import pytest
import torch

from lightning_ssl.metrics.segmentation import SEGMENTATION_METRICS, BinarySegmentationMetrics, segmentation_scores


def _square(low: int, high: int, size: int = 32) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size, dtype=torch.uint8)
    mask[..., low:high, low:high] = 1
    return mask


def _scores(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    return dict(zip(SEGMENTATION_METRICS, segmentation_scores(predicted, target)[0].tolist()))


def test_a_perfect_prediction_scores_perfectly() -> None:
    scores = _scores(_square(8, 24), _square(8, 24))
    assert scores == pytest.approx({"dice": 1, "jaccard": 1, "avg_hausdorff": 0, "ssim": 1, "precision": 1, "recall": 1})


def test_a_prediction_inside_the_reference_has_full_precision_and_partial_recall() -> None:
    scores = _scores(_square(12, 20), _square(8, 24))  # 64 of 256 pixels
    assert scores["precision"] == pytest.approx(1.0) and scores["recall"] == pytest.approx(0.25)
    assert scores["dice"] == pytest.approx(2 * 64 / (64 + 256)) and scores["jaccard"] == pytest.approx(0.25)
    assert scores["avg_hausdorff"] > 0 and scores["ssim"] < 1


def test_empty_masks_score_by_convention_and_nans_stay_out_of_the_mean() -> None:
    empty = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    scores = _scores(empty, empty)
    assert scores["dice"] == 1 and scores["jaccard"] == 1
    assert all(torch.isnan(torch.tensor(scores[k])) for k in ("avg_hausdorff", "precision"))
    metric = BinarySegmentationMetrics()
    metric.update(empty, empty)
    metric.update(_square(8, 24), _square(8, 24))
    assert float(metric.compute()["avg_hausdorff"]) == 0.0


def test_the_metric_averages_per_image_over_updates() -> None:
    metric = BinarySegmentationMetrics()
    metric.update(torch.cat([_square(8, 24), _square(12, 20)]), torch.cat([_square(8, 24), _square(8, 24)]))
    metric.update(_square(8, 24), _square(8, 24))
    assert float(metric.compute()["recall"]) == pytest.approx((1 + 0.25 + 1) / 3)


def test_compute_gathers_the_images_of_every_process() -> None:
    other_rank = segmentation_scores(_square(12, 20), _square(8, 24))

    def gather(tensor: torch.Tensor, group: object = None) -> list[torch.Tensor]:
        return [tensor, other_rank]

    metric = BinarySegmentationMetrics(dist_sync_fn=gather, distributed_available_fn=lambda: True)
    metric.update(_square(8, 24), _square(8, 24))
    assert float(metric.compute()["recall"]) == pytest.approx((1 + 0.25) / 2)


def test_masks_of_other_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="binary masks"):
        segmentation_scores(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8))
