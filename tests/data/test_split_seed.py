"""data.split_seed alone draws the split of data without an official one: data.seed (label budget, sampling) leaves
the held-out patients and the fixed evaluation patches as they are, so every budget and seed is tested alike."""

import nibabel as nib
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from lightning_ssl.data import DATASETS


def _png(path, seed, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24), dtype=np.uint8) if value is None else np.full((24, 24), value, np.uint8)
    Image.fromarray(pixels).save(path)


def _image_folder(root):
    for n in range(12):
        _png(root / f"{n}.png", seed=n)
    return {"root": str(root), "patch_size": [16, 16], "val_fraction": 0.25, "test_fraction": 0.25}


def _busi(root):
    for label, name in enumerate(("benign", "malignant", "normal")):
        for i in range(1, 5):
            _png(root / name / f"{name} ({i}).png", seed=10 * label + i)
            _png(root / name / f"{name} ({i})_mask.png", seed=0, value=255)
    return {"root": str(root), "patch_size": [16, 16], "val_fraction": 0.25, "test_fraction": 0.25}


def _ct_folder(root):
    root.mkdir()
    for n in range(6):
        hu = np.full((24, 24, 12), -1000, np.int16)
        hu[4:20, 4:20, :] = 40 + n
        nib.save(nib.Nifti1Image(hu, np.eye(4)), str(root / f"patient{n}.nii.gz"))
    return {"root": str(root), "patch_size": [8, 8, 4], "patches_per_volume": 2, "val_fraction": 0.2, "test_fraction": 0.2}


DATASETS_WITHOUT_AN_OFFICIAL_SPLIT = {
    "image_folder": _image_folder,
    "busi": _busi,
    "ct_folder": _ct_folder,
    "phantom_xray": lambda root: {"num_patients": 12, "patch_size": [32, 32]},
    "phantom_ct": lambda root: {"num_patients": 6, "volume_shape": [64, 64, 32], "patch_size": [16, 16, 8], "patches_per_volume": 2},
    "phantom_brain_mri": lambda root: {"num_patients": 6, "volume_shape": [48, 48, 32], "patch_size": [16, 16, 8], "patches_per_volume": 2},
}


def _test_split(name, settings, **seeds):
    datamodule = DATASETS[name](OmegaConf.structured(DATASETS[name].Config(**settings, **seeds)))
    datamodule.setup("fit")
    test = datamodule.test_dataset
    items = [test[index] for index in range(len(test))]
    return [str(item.get("patient_id", "")) for item in items], torch.stack([item["image"] for item in items])


@pytest.mark.parametrize("name", sorted(DATASETS_WITHOUT_AN_OFFICIAL_SPLIT))
def test_the_test_split_follows_split_seed_only(name, tmp_path):
    settings = DATASETS_WITHOUT_AN_OFFICIAL_SPLIT[name](tmp_path / "data")
    patients, images = _test_split(name, settings, seed=0, split_seed=0)
    other_seed = _test_split(name, settings, seed=7, split_seed=0)
    assert other_seed[0] == patients and torch.equal(other_seed[1], images)
    others = [_test_split(name, settings, seed=0, split_seed=s) for s in (1, 2, 3)]
    assert any(p != patients or not torch.equal(i, images) for p, i in others)
