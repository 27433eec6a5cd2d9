"""A folder of CT volumes: HU windowing, cubes inside the body, patient split, clear errors."""

import nibabel as nib
import numpy as np
import pytest
from omegaconf import OmegaConf
from real_data import shared_file

from lightning_ssl.data.ct_folder import CTFolderDataModule
from lightning_ssl.data.errors import DataError
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
    with pytest.raises(DataError, match="is not a folder"):
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


def _with_a_thin_volume(root):
    for i in range(4):
        _write_ct(root / f"patient{i}.nii.gz", _phantom_hu(seed=i))
    _write_ct(root / "thin.nii.gz", _phantom_hu(shape=(48, 48, 10), seed=9))
    return root


def test_small_volumes_are_padded_skipped_or_refused_naming_the_file(tmp_path, caplog):
    root = _with_a_thin_volume(tmp_path)
    settings = {"val_fraction": 0.25, "test_fraction": 0.0}
    padded = _datamodule(root, **settings)
    padded.setup()
    volumes = {v.patient_id: v for d in (padded.train_dataset, padded.val_dataset) for v in d.volumes}
    thin = volumes["thin"]
    assert thin.image.shape == (1, 48, 48, 16) and thin.body.shape == (48, 48, 16)
    assert thin.image[0, :, :, 0].max() == 0 and not thin.body[:, :, 0].any()  # air on the padded slices
    dataset = next(d for d in (padded.train_dataset, padded.val_dataset) if thin in d.volumes)
    index = dataset.volumes.index(thin) * 4
    assert dataset[index]["image"].shape == (1, 32, 32, 16) and dataset.item_source(index) == str(root / "thin.nii.gz")
    skipped = _datamodule(root, small_volumes="skip", **settings)
    skipped.setup()
    assert "thin" not in {v.patient_id for d in (skipped.train_dataset, skipped.val_dataset) for v in d.volumes}
    assert f"{root / 'thin.nii.gz'} is [48, 48, 10], smaller than the patch [32, 32, 16]: left out" in caplog.text
    with pytest.raises(DataError, match=r"thin.nii.gz is \[48, 48, 10\], smaller than the patch \[32, 32, 16\]: lower data.patch_size"):
        _datamodule(root, small_volumes="error", **settings).setup()


def test_the_real_30_slice_crop_is_padded_to_a_wider_patch_or_named_when_too_small():
    path = shared_file("ct/example_ct_sm.nii.gz")
    dm = _datamodule(path.parent, pattern=path.name, patch_size=[128, 64, 8])
    dm.setup()
    assert dm.train_dataset.volumes[0].image.shape[1:3] == (128, 101)
    assert dm.train_dataset[0]["image"].shape == (1, 128, 64, 8)
    with pytest.raises(DataError, match=r"example_ct_sm.nii.gz is \[122, 101, 30\], smaller than the patch \[64, 64, 32\]"):
        _datamodule(path.parent, pattern=path.name, patch_size=[64, 64, 32], small_volumes="error").setup()
