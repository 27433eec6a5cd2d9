"""The embedded phantom DataModule serves cubes or slices with labels, split by patient."""

import pytest
import torch
from omegaconf import OmegaConf

from lightning_ssl.data.phantom_ct import PhantomCTDataModule


def _datamodule(**overrides):
    config = OmegaConf.structured(PhantomCTDataModule.Config(num_patients=6, volume_shape=[64, 64, 32], patches_per_volume=4, **overrides))
    dm = PhantomCTDataModule(config)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("spatial_dims,patch", [(3, [32, 32, 16]), (2, [48, 40])])
def test_batches_have_the_shared_keys_and_shapes(spatial_dims, patch):
    dm = _datamodule(spatial_dims=spatial_dims, patch_size=patch, batch_size=3)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 1, *patch) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["mask"].shape == (3, 1, *patch) and set(batch["mask"].unique().tolist()) <= {0, 1}
    assert batch["label"].dtype == torch.long and len(batch["patient_id"]) == 3
    assert dm.info.in_channels == 1 and dm.info.spatial_dims == spatial_dims


def test_patients_never_cross_splits_and_validation_is_fixed():
    dm = _datamodule(batch_size=2)
    patients = {name: {v.patient_id for v in ds.volumes} for name, ds in [("train", dm.train_dataset), ("val", dm.val_dataset), ("test", dm.test_dataset)]}
    assert all(patients.values())
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"]) and not (patients["val"] & patients["test"])
    first = torch.stack([dm.val_dataset[i]["image"] for i in range(len(dm.val_dataset))])
    again = torch.stack([dm.val_dataset[i]["image"] for i in range(len(dm.val_dataset))])
    assert torch.equal(first, again)


def test_cubes_are_taken_inside_the_body():
    dm = _datamodule(patch_size=[32, 32, 16])
    centres = [dm.train_dataset[0]["image"][0, 16, 16, 8] for _ in range(30)]
    # Air (-1000 HU) maps to 0; a cube centred in the body has tissue or lung (> -1000 HU) at its centre.
    assert sum(float(c) > 0.02 for c in centres) >= 27


def test_data_without_a_validation_split_trains_without_validation_and_says_so():
    dm = _datamodule(batch_size=2)
    dm.val_dataset = None
    with pytest.warns(UserWarning, match="no validation split"):
        assert dm.val_dataloader() == []


def test_asking_for_a_split_before_setup_is_an_error():
    dm = PhantomCTDataModule(OmegaConf.structured(PhantomCTDataModule.Config()))
    with pytest.raises(RuntimeError, match="setup"):
        dm.val_dataloader()
