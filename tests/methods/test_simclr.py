"""SimCLR: projections, NT-Xent, encoder-only zoo entry, the optional metadata head, the ResNet encoder, DDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny
from method_helpers import build_method, pneumoniamnist_run, small

from lightning_ssl import zoo
from lightning_ssl.config import build_config
from lightning_ssl.train import pretrain



@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_step_trains_encoder_and_projector_and_no_decoder_exists(spatial_dims: int) -> None:
    method = build_method("simclr", *small(spatial_dims))
    images = torch.rand(4, 1, *([32, 32] if spatial_dims == 2 else [32, 32, 16]))
    loss = method.training_step({"image": images}, 0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None for p in method.network.encoder.parameters())
    assert all(p.grad is not None for p in method.projector.parameters())
    assert not hasattr(method.network, "decoder")


def test_resnet_encoder_is_chosen_in_the_config() -> None:
    resnet = ["network=resnet", "network.widths=[4,8,16,32]", "network.depth=10", "data.spatial_dims=2", "data.patch_size=[32,32]"]
    method = build_method("simclr", *resnet)
    assert type(method.network.encoder).__name__ == "ResNetEncoder"
    loss = method.training_step({"image": torch.rand(4, 1, 32, 32)}, 0)
    assert torch.isfinite(loss)


def test_restoration_refuses_an_encoder_without_decoder() -> None:
    from lightning_ssl.config import ConfigError

    with pytest.raises(ConfigError, match="network 'resnet' has none: use network=unet"):
        build_method("chen", "network=resnet", "data.spatial_dims=2", "data.patch_size=[32,32]")


@pytest.mark.slow
def test_run_publishes_only_the_encoder(tmp_path: Path) -> None:
    result = pretrain(build_config(tiny(tmp_path, "method=simclr", "trainer.max_steps=2")))
    assert [p.name for p in result.zoo_entry.glob("*.safetensors")] == ["encoder.safetensors"]
    encoder = zoo.load("simclr_phantom_ct")
    assert encoder(torch.rand(1, 1, 32, 32, 16))[-1].shape[1] == 16
    assert list(result.run_dir.glob("logs/version_0/images/val_original_and_views_step*.png"))


def test_metadata_head_can_be_switched_on(tmp_path: Path) -> None:
    method = build_method("simclr", *small(3), *tiny(tmp_path), "method.metadata_head=true")
    cfg = build_config([*tiny(tmp_path), "method=simclr", "method.metadata_head=true"])
    from lightning_ssl.data import DATASETS

    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    assert datamodule.metadata_vocabulary("patient_id") == sorted({v.patient_id for v in datamodule.train_dataset.volumes})
    assert method.metadata_head is None
    method._trainer = type("T", (), {"datamodule": datamodule})()
    method.setup("fit")
    assert method.metadata_head is not None
    assert method.metadata_head.vocabulary == datamodule.metadata_vocabulary("patient_id")


@pytest.mark.slow
def test_learns_on_real_pneumoniamnist_and_publishes(tmp_path: Path) -> None:
    epochs, prior, entry = pneumoniamnist_run("simclr", tmp_path, 3)
    assert len(epochs) == 3
    assert epochs[-1]["val/loss"] < epochs[0]["val/loss"]
    assert epochs[-1]["val/probe_acc"] > prior + 0.01, f"probe accuracy {epochs[-1]['val/probe_acc']:.3f} vs class prior {prior:.3f}"
    assert (entry / "encoder.safetensors").is_file()
