"""A folder of CT volumes: HU windowing, cubes inside the body, patient split, clear errors."""

import nibabel as nib
import numpy as np
import pytest
from omegaconf import OmegaConf
from real_data import shared_file

from lightning_ssl.data.ct_folder import CTFolderDataModule
from lightning_ssl.data.intensity import ct_body_mask, window_hu


def _write_ct(path, hu):
    nib.save(nib.Nifti1Image(hu.astype(np.int16), np.diag([1.5, 1.5, 2.0, 1.0])), str(path))


def _phantom_hu(shape=(48, 48, 40), seed=0):
    rng = np.random.default_rng(seed)
    x, y, _ = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    hu = np.full(shape, -1000.0)
    hu[(x / 0.8) ** 2 + (y / 0.6) ** 2 < 1] = 40
    hu[((x - 0.35) / 0.25) ** 2 + (y / 0.35) ** 2 < 1] = -850
    return hu + rng.normal(0, 10, shape)


def _datamodule(root, **overrides):
    settings = {"patch_size": [32, 32, 16], "patches_per_volume": 4, "batch_size": 2, **overrides}
    config = OmegaConf.structured(CTFolderDataModule.Config(root=str(root), **settings))
    return CTFolderDataModule(config)


def test_window_maps_minus_1000_to_0_and_plus_1000_to_1():
    assert np.allclose(window_hu(np.array([-2000.0, -1000.0, 0.0, 1000.0, 3000.0])), [0, 0, 0.5, 1, 1])


def test_body_mask_fills_the_lungs():
    hu = _phantom_hu()
    body = ct_body_mask(hu)
    assert body[24 + 8, 24, 20]  # inside the lung (-850 HU) yet inside the body
    assert not body[0, 0, 20]


def test_patient_level_split_and_batches(tmp_path):
    for i in range(5):
        _write_ct(tmp_path / f"patient{i}.nii.gz", _phantom_hu(seed=i))
    (tmp_path / "patient0_seg.nii.gz").write_bytes(b"not read: excluded by name")
    dm = _datamodule(tmp_path, val_fraction=0.2, test_fraction=0.2)
    dm.setup()
    ids = {name: {v.patient_id for v in getattr(dm, f"{name}_dataset").volumes} for name in ("train", "val", "test")}
    assert len(ids["train"]) == 3 and len(ids["val"]) == 1 and len(ids["test"]) == 1
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 32, 32, 16) and 0 <= batch["image"].min() and batch["image"].max() <= 1


def test_real_ct_volume_single_volume_holdout(caplog):
    path = shared_file("ct/example_ct.nii.gz")
    dm = _datamodule(path.parent, pattern=path.name, patch_size=[64, 64, 32])
    dm.setup()
    assert "only one volume" in caplog.text
    train, val = dm.train_dataset.volumes[0], dm.val_dataset.volumes[0]
    assert train.image.shape[-1] + val.image.shape[-1] == 112 and val.image.shape[-1] >= 32
    item = dm.train_dataset[0]
    assert item["image"].shape == (1, 64, 64, 32) and item["patient_id"] == "example_ct"
    # Cubes are taken inside the body: mostly tissue, not the air around the patient.
    assert float((item["image"] > 0.05).float().mean()) > 0.5


def test_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matching"):
        _datamodule(tmp_path).setup()
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        _datamodule(tmp_path / "missing").setup()
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(ValueError, match="broken.nii.gz"):
        _datamodule(tmp_path).setup()


def test_nan_voxels_are_refused(tmp_path):
    hu = _phantom_hu().astype(np.float32)
    hu[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(hu, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(ValueError, match="nan.nii.gz.*NaN"):
        _datamodule(tmp_path).setup()
