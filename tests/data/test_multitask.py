"""The two-dataset DataModule of MultiMix: nested configs, per-task budgets, batches of four parts, splits, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from real_data import shared_file

from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.multitask import MultiTaskDataModule

SMALL = [
    "data=multitask",
    "data.patch_size=[32,32]",
    "data.batch_size=4",
    "data.classification.num_patients=40",
    "data.classification.label_budget=8",
]
PHANTOM_SEGMENTATION = ["data.segmentation.num_patients=120"]


def _datamodule(*overrides: str) -> MultiTaskDataModule:
    phantom = [] if any(o.startswith("data.segmentation.name=") for o in overrides) else PHANTOM_SEGMENTATION
    cfg = build_config([*SMALL, *phantom, *overrides])
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    return datamodule


def _xray_folder(root: Path, count: int, masks: bool = True) -> Path:
    """``count`` JPEG images with PNG lung masks ``N-mask.png`` beside them."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in range(1, count + 1):
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(root / f"{n}.jpg")
        if masks:
            mask = np.zeros((40, 40), np.uint8)
            mask[8:32, 6:18] = mask[8:32, 22:34] = 255
            Image.fromarray(mask).save(root / f"{n}-mask.png")
    return root


def _folder_segmentation(root: Path, *extra: str) -> list[str]:
    folder = ["data.segmentation.name=image_folder", f"data.segmentation.root={root}", "data.segmentation.mask_suffix=-mask"]
    return [*folder, *extra]


def test_default_config_is_the_phantom_pair_with_the_published_budgets() -> None:
    cfg = build_config(["data=multitask"])
    assert cfg.data.classification.name == cfg.data.segmentation.name == "phantom_xray"
    assert (cfg.data.classification.label_budget, cfg.data.segmentation.label_budget) == (100, 10)
    assert cfg.data.classification.patch_size == cfg.data.segmentation.patch_size == [64, 64]


def test_batches_hold_the_four_parts_with_the_keys_each_task_needs() -> None:
    datamodule = _datamodule("data.segmentation.label_budget=10")
    batch, _, _ = next(iter(datamodule.semi_supervised_dataloader()))
    classification, segmentation = batch["classification"], batch["segmentation"]
    assert set(batch) == {"classification", "segmentation"}
    assert set(classification) == set(segmentation) == {"labeled", "unlabeled"}, "the labeled/unlabeled batch of cpcseg, per task"
    assert set(classification["labeled"]) == {"image", "label"} and set(segmentation["labeled"]) == {"image", "mask"}
    assert set(classification["unlabeled"]) == set(segmentation["unlabeled"]) == {"image"}
    assert segmentation["labeled"]["image"].shape == (4, 1, 32, 32) and segmentation["labeled"]["mask"].shape == (4, 1, 32, 32)
    info = datamodule.info
    assert (info.spatial_dims, info.in_channels, info.num_classes, info.patch_size) == (2, 1, 2, [32, 32])


def test_a_budget_of_all_leaves_no_unlabeled_part() -> None:
    datamodule = _datamodule("data.segmentation.label_budget=all")
    batch, _, _ = next(iter(datamodule.semi_supervised_dataloader()))
    assert set(batch["segmentation"]) == {"labeled"} and set(batch["classification"]) == {"labeled", "unlabeled"}


def test_segmentation_budgets_are_nested_across_10_and_50_and_stratified() -> None:
    chosen = {}
    for budget in (10, 50):
        datamodule = _datamodule(f"data.segmentation.label_budget={budget}", "data.seed=3")
        labeled, unlabeled = datamodule.task_budget("segmentation")
        assert len(labeled) == budget and not set(labeled) & set(unlabeled)
        labels = datamodule.tasks["segmentation"].train_labels()
        expected = budget * np.bincount(labels) / labels.size
        assert np.all(np.abs(np.bincount(labels[labeled], minlength=2) - expected) <= 1)
        chosen[budget] = set(labeled.tolist())
    assert chosen[10] <= chosen[50]
    other_seed = _datamodule("data.segmentation.label_budget=10", "data.seed=4").task_budget("segmentation")[0]
    assert set(other_seed.tolist()) != chosen[10]


def test_segmentation_sets_without_classes_get_a_seeded_nested_order(tmp_path: Path) -> None:
    root = _xray_folder(tmp_path / "xrays", 12)
    picks = [
        set(_datamodule(*_folder_segmentation(root, f"data.segmentation.label_budget={n}")).task_budget("segmentation")[0])
        for n in (2, 5)
    ]
    assert len(picks[0]) == 2 and picks[0] <= picks[1]


def test_validation_and_test_loaders_are_classification_then_segmentation() -> None:
    datamodule = _datamodule("data.segmentation.label_budget=10")
    for loaders in (datamodule.val_dataloader(), datamodule.test_dataloader()):
        classification, segmentation = (next(iter(loader)) for loader in loaders)
        assert set(classification) == {"image", "label"} and set(segmentation) == {"image", "mask"}


def test_four_images_split_into_train_val_and_a_held_out_test_image(tmp_path: Path) -> None:
    root = _xray_folder(tmp_path / "xrays", 4)
    fractions = ["data.segmentation.val_fraction=0.25", "data.segmentation.test_fraction=0.25"]
    datamodule = _datamodule(*_folder_segmentation(root, *fractions, "data.segmentation.label_budget=1"))
    assert [len(datamodule.train_parts["segmentation"][kind]) for kind in ("labeled", "unlabeled")] == [1, 1]
    val, test = datamodule.val_dataloader()[1].dataset, datamodule.test_dataloader()[1].dataset
    assert len(val) == len(test) == 1


def test_a_task_without_a_test_split_is_tested_on_its_validation_split_with_a_warning(tmp_path: Path, caplog) -> None:
    root = _xray_folder(tmp_path / "xrays", 5)
    datamodule = _datamodule(*_folder_segmentation(root, "data.segmentation.label_budget=2"))
    with caplog.at_level(logging.WARNING):
        test = datamodule.test_dataloader()[1]
    assert "no test split" in caplog.text and len(test.dataset) == len(datamodule.tasks["segmentation"].val_dataset)


def test_nested_keys_are_checked_against_the_chosen_dataset() -> None:
    cfg = build_config(["data=multitask", "data.classification.name=pneumoniamnist", "data.classification.root=/data/p"])
    assert cfg.data.classification.flavour == "pneumoniamnist" and cfg.data.classification.root == "/data/p"
    with pytest.raises(ConfigError, match="data.classification.flavour"):
        build_config(["data=multitask", "data.classification.flavour=pneumoniamnist"])
    with pytest.raises(ConfigError, match="unknown data.segmentation 'jsrtt'"):
        build_config(["data=multitask", "data.segmentation.name=jsrtt"])


def test_mismatched_inputs_and_top_level_budgets_say_what_to_do() -> None:
    cfg = build_config([*SMALL, "data.segmentation.patch_size=[48,48]"])
    with pytest.raises(ConfigError, match=r"same input: patch_size \[32, 32\] vs \[48, 48\]"):
        DATASETS["multitask"](cfg.data).info
    with pytest.raises(ConfigError, match="data.classification.label_budget"):
        DATASETS["multitask"](build_config([*SMALL, "data.label_budget=10"]).data)
    with pytest.raises(DataError, match="data.segmentation: .*lower data.segmentation.label_budget"):
        _datamodule("data.segmentation.label_budget=500")


def test_a_segmentation_set_without_masks_fails_at_setup_naming_the_task(tmp_path: Path) -> None:
    root = _xray_folder(tmp_path / "xrays", 6, masks=False)
    with pytest.raises(DataError, match=r"data.segmentation \(image_folder\) items have no \['mask'\].*mask_suffix"):
        _datamodule(*_folder_segmentation(root, "data.segmentation.label_budget=2", "data.segmentation.mask_suffix=null"))


def test_real_pair_pneumoniamnist_and_xray_lung_masks_at_64_px() -> None:
    shared_file("pneumoniamnist/pneumoniamnist.npz")
    shared_file("xray_lung_seg/1-mask.png")
    cfg = build_config(["data=multitask", "config=experiments/data/xray_multitask_real.yaml"])
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    sizes = {(task, kind): len(part) for task, parts in datamodule.train_parts.items() for kind, part in parts.items()}
    assert sizes["classification", "labeled"] == 100 and sizes["segmentation", "labeled"] == sizes["segmentation", "unlabeled"] == 1
    batch, _, _ = next(iter(datamodule.semi_supervised_dataloader()))
    mask = batch["segmentation"]["labeled"]["mask"]
    assert batch["classification"]["unlabeled"]["image"].shape[1:] == (1, 64, 64) and mask.shape[1:] == (1, 64, 64)
    assert set(torch.unique(mask).tolist()) == {0, 1}


def test_check_data_summarises_each_task(capsys) -> None:
    from lightning_ssl.cli import main

    args = ["data.patch_size=[32,32]", "data.classification.num_patients=12", "data.segmentation.num_patients=12",
            "data.classification.label_budget=4", "data.segmentation.label_budget=2"]
    assert main(["check-data", "data=multitask", *args]) == 0
    out = capsys.readouterr().out
    assert "classification: data phantom_xray" in out and "segmentation: data phantom_xray" in out
    assert "train: labeled" in out and "mask values" in out
