"""Per-class Dice and HD95 of label maps."""

import torch

from lightning_ssl.metrics.class_scores import ClassSegmentationMetrics


def test_perfect_maps_score_one_and_zero_and_an_absent_class_is_left_out():
    target = torch.zeros(2, 1, 8, 8, dtype=torch.long)
    target[:, :, 2:5, 2:5] = 1
    target[0, :, 6:, 6:] = 2  # class 2 only in the first sample
    metric = ClassSegmentationMetrics(classes=3)
    metric.update(target, target)
    scores = metric.compute()
    assert scores["dice_class1"] == 1 and scores["dice_class2"] == 1 and scores["dice"] == 1
    assert scores["hd95_class1"] == 0 and scores["hd95_class2"] == 0


def test_a_missed_class_scores_zero_dice():
    target = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    target[:, :, 2:5, 2:5] = 1
    metric = ClassSegmentationMetrics(classes=2)
    metric.update(torch.zeros_like(target), target)
    assert metric.compute()["dice_class1"] == 0
