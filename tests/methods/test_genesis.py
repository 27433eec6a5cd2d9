"""Models Genesis: restoration loss, gradients, image grids, and learning on a real CT volume."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from helpers import tiny
from logged_images import assert_readable
from omegaconf import OmegaConf
from PIL import Image
from real_data import shared_file

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods.genesis import GenesisMethod
from lightning_ssl.train import pretrain


def _method(spatial_dims: int, patch: str) -> GenesisMethod:
    cfg = build_config(["network.features=[4,8,16]", f"data.spatial_dims={spatial_dims}", f"data.patch_size={patch}"])
    info = DATASETS[cfg.data.name](cfg.data).info
    return GenesisMethod(OmegaConf.to_container(cfg, resolve=True), info.as_dict())


@pytest.mark.parametrize("spatial_dims,patch,shape", [(3, "[32,32,16]", (2, 1, 32, 32, 16)), (2, "[64,64]", (2, 1, 64, 64))])
def test_training_step_gives_a_finite_loss_and_encoder_gradients(spatial_dims, patch, shape):
    method = _method(spatial_dims, patch)
    loss = method.training_step({"image": torch.rand(shape)}, 0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None for p in method.network.encoder.parameters())
    assert method(torch.rand(shape)).shape == shape and method.hparams["zoo_metadata"]["output_activation"] == "sigmoid"


def test_missing_image_key_is_reported():
    with pytest.raises(KeyError, match="needs batch keys \\['image'\\]"):
        _method(2, "[64,64]").training_step({"img": torch.rand(2, 1, 64, 64)}, 0)


@pytest.mark.slow
def test_run_logs_an_image_grid_and_saves_config_and_checkpoints(tmp_path):
    cfg = build_config(tiny(tmp_path, "trainer.max_steps=2"))
    result = pretrain(cfg)
    grids = list(result.run_dir.glob("logs/version_0/images/val_original_corrupted_restored_step*.png"))
    assert grids, "no image grid was written"
    grid = Image.open(grids[0])
    # 3 rows (original, corrupted, restored) x 2 samples, each as 3 middle slices, >= 128 px per tile
    assert_readable(np.asarray(grid.convert("RGB")), rows=3, columns=2 * 3)
    assert "rows from top: original, corrupted, restored" in grid.text["Description"]
    assert OmegaConf.load(result.run_dir / "config.yaml").method.name == "genesis"
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert result.zoo_entry is not None and (result.zoo_entry / "encoder.safetensors").is_file()


@pytest.mark.slow
def test_validation_loss_falls_within_50_steps_on_a_real_ct(tmp_path):
    path = shared_file("ct/example_ct.nii.gz")
    cfg = build_config(
        [
            "data=ct_folder",
            f"data.root={path.parent}",
            f"data.pattern={path.name}",
            "data.batch_size=4",
            "data.patches_per_volume=16",
            "data.patch_size=[48,48,24]",
            "network.features=[8,16,32]",
            f"output_dir={tmp_path}",
        ]
    )
    pl.seed_everything(0)
    datamodule = DATASETS["ct_folder"](cfg.data)
    method = GenesisMethod(OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    evaluator = pl.Trainer(**quiet)
    before = evaluator.validate(method, datamodule=datamodule, verbose=False)[0]["val/loss"]
    pl.Trainer(max_steps=50, limit_val_batches=0, **quiet).fit(method, datamodule=datamodule)
    after = evaluator.validate(method, datamodule=datamodule, verbose=False)[0]["val/loss"]
    assert after < 0.8 * before, f"validation loss went from {before:.4f} to {after:.4f}"
