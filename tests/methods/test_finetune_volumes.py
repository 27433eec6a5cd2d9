"""Fine-tuning on whole volumes: a segmentation scores volumes larger than its training patch by sliding windows; a
classification scores patches of the training size (data=decathlon fixtures)."""

from __future__ import annotations

import json

import pytest
import torch
from decathlon_data import write_decathlon
from method_helpers import build_method, small

from lightning_ssl.cli import main
from lightning_ssl.config import ConfigError

RUN = ["network.features=[4,8,16]", "data.patch_size=[16,16,16]", "trainer.max_steps=2", "trainer.val_check_interval=2",
       "trainer.enable_progress_bar=false", "logger=csv"]


def pointwise(seen: list[tuple[int, ...]]):
    """A stand-in network whose logits at a voxel depend on that voxel only, recording each input's shape."""

    def forward(images: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(images.shape))
        return torch.cat([-images, 2 * images], dim=1)

    return forward


@pytest.mark.parametrize("spatial_dims,volume", [(3, (1, 1, 48, 40, 24)), (2, (1, 1, 48, 40, 5))])
def test_volumes_larger_than_the_patch_are_segmented_by_windows_of_the_patch(spatial_dims, volume):
    method = build_method("finetune", *small(spatial_dims), "method.task=segmentation", "data.batch_size=3")
    seen: list[tuple[int, ...]] = []
    method.forward = pointwise(seen)
    images = torch.rand(volume)
    logits = method.segment(images)
    assert logits.shape == (1, 2, *volume[2:])
    assert torch.allclose(logits, torch.cat([-images, 2 * images], dim=1), atol=1e-5)  # every voxel covered, weights sum to 1
    patch = method.data_info.patch_size
    assert all(list(shape[2:]) == patch and shape[0] <= 3 for shape in seen) and len(seen) > 1
    seen.clear()
    patches = torch.rand(2, 1, *patch)
    assert torch.equal(method.segment(patches), torch.cat([-patches, 2 * patches], dim=1)) and seen == [tuple(patches.shape)]


def test_a_window_as_large_as_the_volume_scores_it_in_one_padded_pass():
    method = build_method("finetune", *small(3), "method.task=segmentation", "method.sw_window=[24,24,24]")
    seen: list[tuple[int, ...]] = []
    method.forward = pointwise(seen)
    images = torch.rand(1, 1, 21, 20, 24)
    logits = method.segment(images)
    assert seen == [(1, 1, 24, 24, 24)]
    assert torch.allclose(logits, torch.cat([-images, 2 * images], dim=1), atol=1e-5)


def test_window_size_is_checked():
    with pytest.raises(ConfigError, match=r"method.sw_window=\[24, 24\] must give a positive size for each of the 3 dimensions"):
        build_method("finetune", *small(3), "method.task=segmentation", "method.sw_window=[24,24]")


def test_overlap_is_checked():
    with pytest.raises(ConfigError, match=r"method.sw_overlap=1.0 must be in \[0, 1\)"):
        build_method("finetune", *small(3), "method.task=segmentation", "method.sw_overlap=1.0")


@pytest.mark.slow
def test_segmentation_finetuning_scores_each_test_volume_whole(tmp_path, capsys):
    root = write_decathlon(tmp_path / "data", cases=5, test="labelled")
    args = ["finetune", "DATA=decathlon", f"data.root={root}", "method.task=segmentation", *RUN, f"output_dir={tmp_path / 'runs'}"]
    assert main(args) == 0
    metrics = json.loads(next((tmp_path / "runs").rglob("test_metrics.json")).read_text())["metrics"]
    assert metrics["test/samples"] == 2 and 0 <= metrics["test/dice"] <= 1  # the two labelsTs cases, one item each
    logged = next((tmp_path / "runs").rglob("metrics.csv")).read_text()
    assert "val/dice" in logged


@pytest.mark.slow
def test_classification_finetuning_on_case_classes(tmp_path):
    root = write_decathlon(tmp_path / "data", cases=8)
    (root / "grades.csv").write_text("case,grade\n" + "".join(f"case_{i:03d},{i % 2 + 1}\n" for i in range(8)))
    args = ["finetune", "DATA=decathlon", f"data.root={root}", "method.task=classification", "data.case_labels=grades.csv",
            "data.label_column=grade", "data.val_fraction=0.25", "data.test_fraction=0.25", *RUN, f"output_dir={tmp_path / 'runs'}"]
    assert main(args) == 0
    metrics = json.loads(next((tmp_path / "runs").rglob("test_metrics.json")).read_text())["metrics"]
    assert metrics["test/samples"] == 2 and "test/auc" in metrics  # one patch per test case
