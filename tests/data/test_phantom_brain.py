"""The brain-MRI phantom and its DataModule: determinism, contrasts, BraTS labels, patches, splits, budgets, a run."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.phantom_brain import PhantomBrainMRIDataModule
from lightning_ssl.data.phantoms import BrainMRIPhantom, brain_mri_phantom
from lightning_ssl.train import pretrain
from lightning_ssl.metrics.brats_labels import brats_regions

SMALL = (48, 48, 32)
T1, T1CE, T2, FLAIR = range(4)


@cache
def phantom(seed: int, shape: tuple[int, int, int] = (96, 96, 64), probability: float = 0.8) -> BrainMRIPhantom:
    return brain_mri_phantom(seed, shape, probability)


def grown(mask: np.ndarray) -> np.ndarray:
    """``mask`` and its 6-connected neighbours."""
    padded = np.pad(mask, 1)
    out = padded.copy()
    for axis in range(3):
        out |= np.roll(padded, 1, axis) | np.roll(padded, -1, axis)
    return out[1:-1, 1:-1, 1:-1]


def datamodule(**overrides) -> PhantomBrainMRIDataModule:
    settings = {"num_patients": 6, "volume_shape": list(SMALL), "patch_size": [32, 32, 16], "patches_per_volume": 4, **overrides}
    dm = PhantomBrainMRIDataModule(OmegaConf.structured(PhantomBrainMRIDataModule.Config(**settings)))
    dm.setup("fit")
    return dm


def test_same_seed_gives_identical_phantoms_and_other_seeds_differ() -> None:
    first, again, other = brain_mri_phantom(3, SMALL), brain_mri_phantom(3, SMALL), brain_mri_phantom(4, SMALL)
    assert first.patient_id == again.patient_id == "brain-0003" != other.patient_id
    for name in ("image", "brain_mask", "labels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.has_tumour == again.has_tumour
    assert not np.array_equal(first.image, other.image) and first.brain_mask.sum() != other.brain_mask.sum()


def test_shapes_dtypes_and_zero_background() -> None:
    p = phantom(0)
    assert p.image.shape == (4, 96, 96, 64) and p.image.dtype == np.float32
    assert p.brain_mask.shape == p.labels.shape == (96, 96, 64)
    assert p.brain_mask.dtype == np.bool_ and p.labels.dtype == np.uint8
    assert np.all(p.image[:, ~p.brain_mask] == 0) and np.all(p.image[:, p.brain_mask] > 0)
    assert 0.15 < p.brain_mask.mean() < 0.4
    assert not p.brain_mask[0].any() and not p.brain_mask[:, :, -1].any()


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_modality_contrasts(seed: int) -> None:
    p = phantom(seed, probability=1.0)
    healthy = p.brain_mask & (p.labels == 0)

    def ratio(channel: int, label: int) -> float:
        return float(np.median(p.image[channel][p.labels == label]) / np.median(p.image[channel][healthy]))

    assert ratio(T1CE, 3) > 1.6 and ratio(T1, 3) < 1.2
    assert ratio(T2, 2) > 1.6 and ratio(FLAIR, 2) > 1.4 and ratio(T1, 2) < 0.9
    csf = healthy & (p.image[T2] > 2.2 * np.median(p.image[T2][healthy]))
    assert csf.sum() > 100
    assert np.median(p.image[FLAIR][csf]) < 0.5 * np.median(p.image[FLAIR][healthy])


@pytest.mark.parametrize("seed", range(6))
def test_tumour_labels_are_canonical_and_nested(seed: int) -> None:
    p = phantom(seed, probability=1.0)
    assert p.has_tumour and set(np.unique(p.labels).tolist()) == {0, 1, 2, 3}
    whole, core, enhancing = brats_regions(torch.from_numpy(p.labels)[None]).bool().numpy()
    necrotic = p.labels == 1
    assert np.all(enhancing <= core) and np.all(necrotic <= core) and np.all(core <= whole) and np.all(whole <= p.brain_mask)
    assert np.all(grown(necrotic) <= core), "necrosis touches edema or healthy brain: no enhancing rim around it"
    assert np.all(grown(core) <= whole), "the tumour core touches healthy brain: no edema around it"
    assert (p.labels == 2).sum() > core.sum() > necrotic.sum() > 0


def test_tumour_probability_changes_only_the_tumour() -> None:
    for seed in range(5):
        healthy, diseased = phantom(seed, SMALL, 0.0), phantom(seed, SMALL, 1.0)
        assert not healthy.has_tumour and not healthy.labels.any() and diseased.has_tumour
        np.testing.assert_array_equal(healthy.brain_mask, diseased.brain_mask)
        outside = diseased.labels == 0
        np.testing.assert_array_equal(healthy.image[:, outside], diseased.image[:, outside])


def test_most_patients_have_a_tumour_by_default() -> None:
    with_tumour = sum(phantom(seed, SMALL).has_tumour for seed in range(30))
    assert 18 <= with_tumour <= 29


@pytest.mark.parametrize("shape", [(32, 32, 32), (64, 80, 40), (128, 128, 48)])
def test_other_shapes(shape: tuple[int, int, int]) -> None:
    p = brain_mri_phantom(7, shape, tumour_probability=1.0)
    assert p.image.shape == (4, *shape) and p.labels.shape == shape
    assert np.all(p.image[:, ~p.brain_mask] == 0) and p.labels.any() and np.all((p.labels > 0) <= p.brain_mask)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 32 voxels"):
        brain_mri_phantom(0, (31, 64, 64))
    with pytest.raises(ValueError, match="tumour_probability"):
        brain_mri_phantom(0, SMALL, 1.5)


@pytest.mark.parametrize("spatial_dims,patch", [(3, [32, 32, 16]), (2, [40, 32])])
def test_items_follow_the_contract(spatial_dims: int, patch: list[int]) -> None:
    dm = datamodule(spatial_dims=spatial_dims, patch_size=patch, batch_size=3)
    for batch in (next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader()))):
        assert set(batch) == {"image", "mask", "label", "patient_id"}
        assert batch["image"].shape == (3, 4, *patch) and batch["image"].dtype == torch.float32
        assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
        assert batch["mask"].shape == (3, 1, *patch) and batch["mask"].dtype == torch.uint8
        assert set(batch["mask"].unique().tolist()) <= {0, 1, 2, 3}
        assert batch["label"].dtype == torch.int64
        assert torch.equal(batch["label"], batch["mask"].flatten(1).any(1).long())
        assert len(batch["patient_id"]) == 3
    info = dm.info
    assert info.in_channels == 4 and info.channel_names == ["t1", "t1ce", "t2", "flair"] and info.spatial_dims == spatial_dims
    assert (
        info.modality == "MRI (synthetic brain phantom)" and info.num_classes == 2 and info.class_names == ["no tumour", "tumour"]
    )


@pytest.mark.parametrize("normalisation", ["zscore", "minmax"])
def test_volumes_are_normalised_over_the_brain(normalisation: str) -> None:
    dm = datamodule(mri_normalisation=normalisation)
    volume = dm.train_dataset.volumes[0]
    assert np.all(volume.image[:, ~volume.brain] == 0)
    assert volume.image.min() == 0 and np.allclose(volume.image.reshape(4, -1).max(1), 1.0)


def test_training_patches_lie_in_the_brain_and_mostly_hold_tumour() -> None:
    dm = datamodule(tumour_probability=1.0)
    train = dm.train_dataset
    items = [train[i] for i in range(4) for _ in range(10)]  # the first volume, 40 random patches
    assert sum(int(item["label"]) for item in items) >= 24
    assert sum(bool(item["image"][:, 16, 16, 8].any()) for item in items) >= 36


def test_patients_never_cross_splits_and_fixed_patches_are_fixed() -> None:
    dm = datamodule()
    splits = [dm.train_dataset, dm.val_dataset, dm.test_dataset]
    patients = [set(ds.column_values("patient_id")) for ds in splits]
    assert all(patients) and sum(len(p) for p in patients) == 6 == len(set.union(*patients))
    assert len(dm.train_dataset.column_values("patient_id")) == len(dm.train_dataset)
    assert dm.train_dataset.column_values("age") is None
    val = dm.val_dataset
    assert torch.equal(
        torch.stack([val[i]["image"] for i in range(len(val))]), torch.stack([val[i]["image"] for i in range(len(val))])
    )
    assert val.class_labels() == [int(val[i]["label"]) for i in range(len(val))]
    assert dm.train_dataset.class_labels() == [int(v.has_tumour) for v in dm.train_dataset.volumes for _ in range(4)]
    assert dm.metadata_vocabulary("patient_id") == sorted(patients[0])


@pytest.mark.parametrize("seed", range(4))
def test_every_split_holds_a_tumour_patient(seed: int) -> None:
    dm = datamodule(num_patients=12, patches_per_volume=1, split_seed=seed)
    for split in (dm.train_dataset, dm.val_dataset, dm.test_dataset):
        assert any(volume.has_tumour for volume in split.volumes)


def test_label_budget_is_stratified() -> None:
    dm = datamodule(num_patients=10, tumour_probability=0.5, label_budget=10)
    labels = dm.train_labels()
    labeled = dm.labeled_dataset()
    assert len(labeled) == 10 and len(dm.unlabeled_dataset()) == len(labels) - 10
    chosen = labels[dm.budget_indices()[0]]
    assert 0 < labels.mean() < 1 and abs(chosen.sum() - 10 * labels.mean()) <= 1


def test_bad_configs_say_what_to_fix() -> None:
    with pytest.raises(ConfigError, match="needs 3 values"):
        datamodule(patch_size=[32, 32])
    with pytest.raises(ConfigError, match="mri_normalisation"):
        datamodule(mri_normalisation="percentile")
    with pytest.raises(DataError, match="larger than data.volume_shape"):
        datamodule(patch_size=[64, 32, 16])
    with pytest.raises(ConfigError, match="at least 32 voxels"):
        datamodule(volume_shape=[48, 48, 16], patch_size=[16, 16, 8])


@pytest.mark.slow
def test_genesis_runs_on_the_brain_phantom(tmp_path) -> None:
    assert DATASETS["phantom_brain_mri"] is PhantomBrainMRIDataModule
    overrides = [
        "method=genesis",
        "data=phantom_brain_mri",
        "data.num_patients=4",
        "data.volume_shape=[48,48,32]",
        "data.patch_size=[32,32,16]",
        "data.patches_per_volume=2",
        "data.batch_size=2",
        "data.val_fraction=0.25",
        "data.test_fraction=0",
        "network.features=[4,8,16]",
        "trainer.max_steps=2",
        "trainer.enable_progress_bar=false",
        f"output_dir={tmp_path}",
    ]
    result = pretrain(build_config(overrides))
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
