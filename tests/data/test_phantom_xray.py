"""The chest X-ray phantom and its DataModule: determinism, anatomy, pneumonia, items, splits, budgets, learnability, a run."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.phantom_xray import PhantomXRayDataModule
from lightning_ssl.data.phantoms import ChestXRayPhantom, chest_xray_phantom
from lightning_ssl.train import pretrain


@cache
def phantom(seed: int, size: int = 128, pneumonia: bool = False) -> ChestXRayPhantom:
    return chest_xray_phantom(seed, size, pneumonia)


def datamodule(**overrides) -> PhantomXRayDataModule:
    settings = {"num_patients": 40, "patch_size": [32, 32], **overrides}
    dm = PhantomXRayDataModule(OmegaConf.structured(PhantomXRayDataModule.Config(**settings)))
    dm.setup("fit")
    return dm


def test_same_seed_gives_identical_images_and_other_seeds_differ() -> None:
    first, again, other = chest_xray_phantom(3), chest_xray_phantom(3), chest_xray_phantom(4)
    assert first.patient_id == again.patient_id == "xray-0003" != other.patient_id
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.lung_mask, again.lung_mask)
    assert not np.array_equal(first.image, other.image) and first.lung_mask.sum() != other.lung_mask.sum()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_radiograph_anatomy(seed: int) -> None:
    p = phantom(seed)
    image, lungs = p.image, p.lung_mask.astype(bool)
    assert image.shape == p.lung_mask.shape == (128, 128) and image.dtype == np.float32 and p.lung_mask.dtype == np.uint8
    assert 0.0 <= image.min() and image.max() <= 1.0 and set(np.unique(p.lung_mask).tolist()) == {0, 1}
    assert p.label == 0 and 0.15 < lungs.mean() < 0.45
    left, right = lungs[:, :64].sum(), lungs[:, 64:].sum()
    assert min(left, right) > 0.5 * max(left, right), "two lung fields, one either side"
    assert not lungs[:, 62:66].any(), "the mediastinum lies between the lungs"
    mediastinum = image[40:90, 58:70]
    assert np.median(image[lungs]) + 0.15 < np.median(mediastinum)
    assert np.median(image[:, :4]) < 0.15 and np.median(image[:, :4]) < np.median(image[lungs]), "air outside the body"
    rows = lungs.any(axis=1).nonzero()[0]
    assert rows.min() > 5 and rows.max() < 112, "apices below the top edge, diaphragm above the abdomen"


@pytest.mark.parametrize("seed", range(6))
def test_pneumonia_adds_consolidation_inside_the_lungs_only(seed: int) -> None:
    normal, ill = phantom(seed), phantom(seed, pneumonia=True)
    assert ill.label == 1
    np.testing.assert_array_equal(normal.lung_mask, ill.lung_mask)
    lungs = normal.lung_mask.astype(bool)
    assert ill.image[lungs].mean() > normal.image[lungs].mean() + 0.01
    far = ~np.convolve(lungs.any(axis=0), np.ones(15), "same").astype(bool)  # columns well away from both lungs
    assert np.abs(ill.image[:, far] - normal.image[:, far]).max() < 1e-6


@pytest.mark.parametrize("size", [(64, 64), (48, 40), (256, 256)])
def test_other_sizes(size: tuple[int, int]) -> None:
    p = chest_xray_phantom(5, size, pneumonia=True)
    assert p.image.shape == p.lung_mask.shape == size and p.lung_mask.any() and p.label == 1


def test_too_small_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 16 pixels"):
        chest_xray_phantom(0, 8)


def test_items_follow_the_contract() -> None:
    dm = datamodule(patch_size=[48, 40], batch_size=4)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "label", "mask", "patient_id"}
    assert batch["image"].shape == (4, 1, 48, 40) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["mask"].shape == (4, 1, 48, 40) and batch["mask"].dtype == torch.uint8
    assert set(batch["mask"].unique().tolist()) == {0, 1}
    assert batch["label"].dtype == torch.int64 and len(batch["patient_id"]) == 4
    info = dm.info
    assert info.spatial_dims == 2 and info.in_channels == 1 and info.patch_size == [48, 40]
    assert (
        info.modality == "X-ray (synthetic chest phantom)"
        and info.num_classes == 2
        and info.class_names == ["normal", "pneumonia"]
    )


def test_patients_never_cross_splits_and_classes_are_mixed() -> None:
    dm = datamodule()
    splits = [dm.train_dataset, dm.val_dataset, dm.test_dataset]
    patients = [set(ds.column_values("patient_id")) for ds in splits]
    assert [len(p) for p in patients] == [24, 8, 8] and len(set.union(*patients)) == 40
    assert dm.train_dataset.column_values("sex") is None
    for ds in splits:
        assert ds.class_labels() == [int(ds[i]["label"]) for i in range(len(ds))]
    labels = dm.train_labels()
    assert 0.25 < labels.mean() < 0.75
    assert datamodule().train_dataset.class_labels() == dm.train_dataset.class_labels(), "deterministic"
    assert datamodule(pneumonia_fraction=0.0).train_labels().sum() == 0


def test_label_budget_is_stratified() -> None:
    dm = datamodule(label_budget=10)
    labels = dm.train_labels()
    assert len(dm.labeled_dataset()) == 10 and len(dm.unlabeled_dataset()) == len(labels) - 10
    assert "label" not in dm.unlabeled_dataset()[0]
    assert abs(labels[dm.budget_indices()[0]].sum() - 10 * labels.mean()) <= 1


def test_three_dimensions_are_refused() -> None:
    with pytest.raises(ConfigError, match="spatial_dims=2"):
        datamodule(spatial_dims=3, patch_size=[32, 32, 16])


@pytest.mark.slow
def test_a_tiny_cnn_tells_pneumonia_from_normal() -> None:
    dm = datamodule(num_patients=400, val_fraction=0.25, test_fraction=0.25)
    train, test = dm.train_dataset, dm.test_dataset
    images = torch.stack([train[i]["image"] for i in range(len(train))])
    labels = torch.tensor(train.class_labels())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions run fastest on one thread
    try:
        torch.manual_seed(0)
        cnn = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(16, 2),
        )  # fmt: skip
        optimiser = torch.optim.Adam(cnn.parameters(), lr=1e-2)
        for _ in range(300):
            batch = torch.randint(0, len(labels), (32,))
            loss = nn.functional.cross_entropy(cnn(images[batch]), labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            predicted = cnn(torch.stack([test[i]["image"] for i in range(len(test))])).argmax(1)
    finally:
        torch.set_num_threads(threads)
    accuracy = (predicted == torch.tensor(test.class_labels())).float().mean()
    assert accuracy > 0.8, f"held-out accuracy {accuracy:.2f}"


@pytest.mark.slow
def test_simclr_runs_on_the_xray_phantom(tmp_path) -> None:
    assert DATASETS["phantom_xray"] is PhantomXRayDataModule
    overrides = [
        "method=simclr",
        "data=phantom_xray",
        "data.num_patients=20",
        "data.patch_size=[32,32]",
        "data.batch_size=4",
        "network.features=[4,8,16]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path}",
    ]
    result = pretrain(build_config(overrides))
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
