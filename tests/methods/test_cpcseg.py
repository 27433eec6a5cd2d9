"""ssCPCseg: the patch grid, the CPC branch's gradient, semi-supervised batches, runs on phantoms and on real BraTS."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import tiny
from method_helpers import build_method
from omegaconf import OmegaConf
from real_data import shared_file
from torch.utils.data import DataLoader

from lightning_ssl.cli import main
from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods.cpcseg import CPCSegMethod
from lightning_ssl.models.cpc import CPCBranch, patch_grid

SMALL_3D = ["network.features=[4,8,16]", "data.patch_size=[32,32,16]", "method.cpc_patch_size=16", "method.cpc_stride=8"]
SMALL_2D = ["network.features=[4,8,16]", "data.spatial_dims=2", "data.patch_size=[48,48]", "method.cpc_patch_size=16", "method.cpc_stride=8"]


def _method(*overrides: str, seed: int = 0) -> CPCSegMethod:
    torch.manual_seed(seed)
    return build_method("cpcseg", *SMALL_3D, *overrides)


def _labeled(batch: int = 2, shape: tuple[int, ...] = (32, 32, 16)) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {"image": torch.rand(batch, 4, *shape, generator=generator), "mask": torch.randint(0, 4, (batch, 1, *shape), generator=generator)}


def _unlabeled(batch: int = 2, shape: tuple[int, ...] = (32, 32, 16)) -> dict[str, torch.Tensor]:
    return {"image": torch.rand(batch, 4, *shape, generator=torch.Generator().manual_seed(2))}


def _gradients(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()])


def test_a_144x144x128_crop_gives_an_8x8x7_grid_of_the_right_crops():
    images = torch.rand(2, 1, 144, 144, 128)
    patches, grid = patch_grid(images, size=32, stride=16)
    assert grid == (8, 8, 7) and patches.shape == (2 * 8 * 8 * 7, 1, 32, 32, 32)
    for b, i, j, k in [(0, 0, 0, 0), (0, 7, 0, 6), (1, 3, 5, 2), (1, 7, 7, 6)]:
        expected = images[b, :, 16 * i : 16 * i + 32, 16 * j : 16 * j + 32, 16 * k : 16 * k + 32]
        assert torch.equal(patches[b * 448 + (i * 8 + j) * 7 + k], expected)


def test_2d_images_give_a_2d_grid():
    images = torch.rand(3, 2, 64, 48)
    patches, grid = patch_grid(images, size=32, stride=16)
    assert grid == (3, 2) and patches.shape == (18, 2, 32, 32)
    assert torch.equal(patches[2 * 6 + 2 * 2 + 1], images[2, :, 32:64, 16:48])


def test_the_predictor_sees_only_the_upper_half_and_aims_at_the_lower_half():
    encoder = build_method("cpcseg", *SMALL_3D).network.encoder.eval()
    branch = CPCBranch(3, encoder.out_channels, patch_size=16, stride=8, dim=12, predictor_blocks=2).eval()
    images = torch.rand(2, 4, 48, 32, 16)  # grid 5x3x1: context rows 0-1 (voxels 0-23), target rows 3-4
    output = branch(images, encoder)
    assert output.grid == (5, 3, 1) and output.vectors.shape == (2, 15, 12) and output.predictions.shape == (2, 6, 12)
    assert output.targets.tolist() == [9, 10, 11, 12, 13, 14]
    changed = images.clone()
    changed[:, :, 24:] = torch.rand_like(changed[:, :, 24:])
    with torch.no_grad():
        assert torch.equal(branch(changed, encoder).predictions, output.predictions)


def test_a_grid_with_one_row_is_refused_with_what_to_do():
    method = _method()
    with pytest.raises(ValueError, match="fewer than 2 rows"):
        method.cpc_loss(torch.rand(1, 4, 20, 32, 16))


def test_the_cpc_weight_changes_the_encoder_gradient():
    batch = {"labeled": _labeled()}
    without, weighted = _method("method.cpc_weight=0"), _method("method.cpc_weight=1")
    assert all(torch.equal(a, b) for a, b in zip(without.network.parameters(), weighted.network.parameters()))
    without.training_step(batch, 0).backward()
    torch.manual_seed(3)
    weighted.training_step(batch, 0).backward()
    assert not torch.allclose(_gradients(without.network.encoder), _gradients(weighted.network.encoder))
    assert torch.allclose(_gradients(without.network.decoder), _gradients(weighted.network.decoder))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weighted.cpc.parameters())


def test_an_unlabeled_only_batch_trains_the_encoder_without_the_segmentation_loss(monkeypatch):
    method = _method()
    monkeypatch.setattr(method.seg_loss, "forward", lambda *args: pytest.fail("the segmentation loss was computed"))
    optimizer = method.configure_optimizers()
    before = {name: p.detach().clone() for name, p in method.named_parameters()}
    loss = method.training_step({"unlabeled": _unlabeled()}, 0)
    loss.backward()
    assert all(p.grad is None for p in method.network.decoder.parameters())
    optimizer.step()
    changed = {name for name, p in method.named_parameters() if not torch.equal(p, before[name])}
    assert any(name.startswith("network.encoder.") for name in changed)
    assert any(name.startswith("cpc.") for name in changed)
    assert not any(name.startswith("network.decoder.") for name in changed)


def test_labeled_and_unlabeled_images_all_feed_the_cpc_loss():
    method = _method()
    calls = []
    original = method.cpc_loss
    method.cpc_loss = lambda images, generator=None: calls.append(images.shape[0]) or original(images, generator)
    loss = method.training_step({"labeled": _labeled(2), "unlabeled": _unlabeled(3)}, 0)
    loss.backward()
    assert calls == [5] and torch.isfinite(loss)
    assert all(p.grad is not None for p in method.network.decoder.parameters())


def test_a_batch_with_neither_part_is_reported():
    with pytest.raises(KeyError, match="'labeled' and/or 'unlabeled'"):
        _method().training_step({"image": torch.rand(1, 4, 32, 32, 16)}, 0)


def test_2d_training_and_validation_steps_work():
    method = build_method("cpcseg", *SMALL_2D)
    loss = method.training_step({"labeled": _labeled(2, (48, 48)), "unlabeled": _unlabeled(2, (48, 48))}, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert method(torch.rand(1, 4, 48, 48)).shape == (1, 4, 48, 48)


@pytest.mark.slow
def test_a_semi_supervised_run_logs_region_metrics_an_image_grid_and_publishes_its_best_dice_encoder_and_decoder(tmp_path: Path):
    args = tiny(tmp_path, "trainer.max_steps=2", "trainer.log_every_n_steps=1", "data.label_budget=2", "method.cpc_patch_size=16", "method.cpc_stride=8")
    assert main(["pretrain", "method=cpcseg", *args]) == 0
    run_dir = next(tmp_path.glob("cpcseg_phantom_brain_mri/*"))
    rows = list(csv.DictReader((run_dir / "logs" / "version_0" / "metrics.csv").open()))
    logged = {key for row in rows for key, value in row.items() if value}
    expected = {"train/loss", "train/seg_loss", "train/cpc_loss", "val/loss", "val/dice", "val/dice_wt", "val/dice_tc"}
    assert expected | {"val/dice_et", "val/hd95_wt", "val/hd95_tc", "val/hd95_et"} <= logged
    assert list(run_dir.glob("logs/version_0/images/val_image_true_predicted_regions_step*.png"))
    (best,) = run_dir.glob("checkpoints/best-*.ckpt")
    monitors = [key for key in torch.load(best, weights_only=False)["callbacks"] if key.startswith("ModelCheckpoint{'monitor': '")]
    assert monitors and all("'monitor': 'val/dice', 'mode': 'max'" in m for m in monitors), "published: the best on validation Dice"
    entry = tmp_path / "zoo" / "cpcseg_phantom_brain_mri" / "v1"
    metadata = json.loads((entry / "metadata.json").read_text())
    assert metadata["method"] == "cpcseg" and metadata["output_activation"] == "softmax"
    assert metadata["architecture"]["kwargs"]["residual"] is True and metadata["architecture"]["kwargs"]["out_channels"] == 4
    assert (entry / "encoder.safetensors").is_file() and (entry / "decoder.safetensors").is_file()


class _TrainLosses(pl.Callback):
    """Collects the training loss of every step."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


@pytest.mark.slow
def test_training_on_real_brats_cases_runs_and_gives_finite_region_metrics(tmp_path: Path):
    root = shared_file("brats/BraTS-GLI-90001-000").parent
    cfg = build_config(
        [
            "method=cpcseg",
            "data=brats",
            f"data.root={root}",
            "data.with_masks=true",
            "data.label_budget=1",
            "data.val_fraction=0",
            "data.patch_size=[64,64,48]",
            "data.patches_per_case=8",
            "data.cache=memory",
            "method.cpc_patch_size=32",
            "method.cpc_stride=16",
            "network.features=[4,8,16,32]",
            f"output_dir={tmp_path}",
        ]
    )
    pl.seed_everything(0)
    datamodule = DATASETS["brats"](cfg.data)
    datamodule.setup("fit")
    method = CPCSegMethod(OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    losses = _TrainLosses()
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    # The one segmented case trains; its label map is a model's prediction, so the metrics are checks, not scores.
    labeled = DataLoader(datamodule.labeled_dataset(), batch_size=2)
    pl.Trainer(max_steps=12, limit_val_batches=0, callbacks=[losses], **quiet).fit(method, train_dataloaders=datamodule.semi_supervised_dataloader())
    metrics = pl.Trainer(**quiet).validate(method, dataloaders=labeled, verbose=False)[0]
    assert len(losses.losses) == 12 and all(torch.isfinite(torch.tensor(losses.losses)))
    assert sum(losses.losses[-4:]) < sum(losses.losses[:4]), losses.losses
    for key in ("val/loss", "val/dice", "val/dice_wt", "val/dice_tc", "val/dice_et", "val/hd95_wt", "val/hd95_tc", "val/hd95_et"):
        assert torch.isfinite(torch.tensor(metrics[key])), (key, metrics)
