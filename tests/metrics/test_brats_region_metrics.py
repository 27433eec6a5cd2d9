"""Dice and HD95 per BraTS region: both label conventions agree, perfect predictions score perfectly, empty regions."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_ssl.metrics.brats_regions import BraTSRegionMetrics, region_scores, to_canonical


def _tumour(shift: int = 0, enhancing: int = 3) -> torch.Tensor:
    """A (1, 1, 24, 24, 16) map: edema shell, necrotic core, an enhancing rim label (3 or 4)."""
    labels = torch.zeros(1, 1, 24, 24, 16, dtype=torch.long)
    labels[..., 4 + shift : 18 + shift, 4:18, 3:13] = 2
    labels[..., 7 + shift : 15 + shift, 7:15, 5:11] = enhancing
    labels[..., 9 + shift : 13 + shift, 9:13, 7:9] = 1
    return labels


def test_both_label_conventions_give_the_same_scores():
    predicted, target = _tumour(shift=2), _tumour()
    new = region_scores(predicted, target, convention="2023")
    old = region_scores(_tumour(shift=2, enhancing=4), _tumour(enhancing=4), convention="2017")
    canonical = region_scores(to_canonical(_tumour(2, 4), "2017"), to_canonical(_tumour(enhancing=4), "2017"))
    assert torch.equal(new, old) and torch.equal(new, canonical)
    assert (new[..., 0] < 1).all() and (new[..., 1] > 0).all()


def test_a_perfect_prediction_scores_dice_one_and_hd95_zero():
    target = _tumour()
    scores = region_scores(target, target, spacing=[1.0, 1.0, 2.0])
    assert torch.equal(scores[..., 0], torch.ones(1, 3)) and torch.equal(scores[..., 1], torch.zeros(1, 3))


def test_a_shift_gives_its_distance_in_spacing_units():
    scores = region_scores(_tumour(shift=2), _tumour(), spacing=[1.5, 1.0, 1.0])
    assert scores[0, 0, 1] == pytest.approx(3.0)  # whole tumour moved 2 voxels of 1.5 mm


def test_empty_regions_follow_the_brats_rules():
    healthy = torch.zeros(1, 1, 24, 24, 16, dtype=torch.long)
    assert torch.equal(region_scores(healthy, healthy)[0], torch.tensor([[1.0, 0.0]] * 3))
    missed = region_scores(healthy, _tumour())[0]
    diagonal = math.dist((0, 0, 0), (23, 23, 15))
    assert torch.equal(missed[:, 0], torch.zeros(3)) and torch.allclose(missed[:, 1], torch.full((3,), diagonal))
    assert torch.allclose(region_scores(_tumour(), healthy)[0, :, 1], torch.full((3,), diagonal))


def test_the_metric_averages_every_sample_and_resets():
    metric = BraTSRegionMetrics()
    target = _tumour()
    metric.update(target, target)
    metric.update(torch.zeros_like(target), target)
    results = metric.compute()
    assert set(results) == {"dice", "dice_wt", "dice_tc", "dice_et", "hd95_wt", "hd95_tc", "hd95_et"}
    assert results["dice"] == pytest.approx(0.5) and results["dice_et"] == pytest.approx(0.5)
    metric.reset()
    metric.update(target, target)
    assert metric.compute()["dice"] == pytest.approx(1.0)


def test_2d_label_maps_work():
    target = _tumour()[..., 8]
    scores = region_scores(target, target)
    assert scores.shape == (1, 3, 2) and torch.equal(scores[..., 0], torch.ones(1, 3))


@pytest.mark.ddp
def test_two_processes_with_different_sample_counts_equal_one_process(tmp_path: Path):
    worker = Path(__file__).with_name("ddp_brats_regions_worker.py")
    report = tmp_path / "report.json"
    completed = subprocess.run(
        [sys.executable, str(worker), str(tmp_path / "init"), str(report)], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    outcome = json.loads(report.read_text())
    for computed in outcome["ranks"]:
        assert computed == pytest.approx(outcome["single"])
    assert outcome["single"]["dice"] < 1


def test_a_label_outside_the_convention_is_refused():
    with pytest.raises(ValueError, match="2017 convention"):
        region_scores(_tumour(), _tumour(), convention="2017")  # label 3 does not exist in 2017
