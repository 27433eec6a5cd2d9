"""Context restoration (Chen et al.): the corruption from the config, the restoration loss, the zoo entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny
from method_helpers import build_method, pneumoniamnist_run, small

from lightning_ssl.config import build_config
from lightning_ssl.train import pretrain


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_restoration_step_trains_encoder_and_decoder(spatial_dims: int) -> None:
    method = build_method("chen", *small(spatial_dims))
    images = torch.rand(2, 1, *([32, 32] if spatial_dims == 2 else [32, 32, 16]))
    loss = method.training_step({"image": images}, 0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None for p in method.network.encoder.parameters())
    assert all(p.grad is not None for p in method.network.decoder.parameters())
    assert method(images).shape == images.shape


def test_corruption_follows_the_config_and_keeps_intensities() -> None:
    images = torch.rand(3, 1, 32, 32)
    unchanged = build_method("chen", *small(2), "method.corruption.swaps=0").corrupt(images)
    assert torch.equal(unchanged, images)
    swapped = build_method("chen", *small(2), "method.corruption.swaps=5", "method.corruption.patch_size=[8,8]").corrupt(images)
    assert not torch.equal(swapped, images)
    assert torch.equal(swapped.flatten(1).sort(dim=1).values, images.flatten(1).sort(dim=1).values)
    changed = (swapped != images).flatten(1).sum(dim=1)
    assert int(changed.max()) <= 5 * 2 * 8 * 8


def test_patches_too_large_for_the_image_fail_with_the_sizes() -> None:
    method = build_method("chen", *small(2), "method.corruption.patch_size=[20,20]")
    with pytest.raises(ValueError, match=r"\[20, 20\]"):
        method.training_step({"image": torch.rand(2, 1, 32, 32)}, 0)


@pytest.mark.slow
def test_run_publishes_encoder_and_decoder(tmp_path) -> None:
    result = pretrain(build_config(tiny(tmp_path, "method=chen", "trainer.max_steps=2")))
    assert {p.name for p in result.zoo_entry.glob("*.safetensors")} == {"encoder.safetensors", "decoder.safetensors"}
    assert list(result.run_dir.glob("logs/version_0/images/val_original_corrupted_restored_step*.png"))
    assert "train/probe_acc" in result.metrics


@pytest.mark.slow
def test_learns_on_real_pneumoniamnist_and_publishes(tmp_path: Path) -> None:
    epochs, prior, entry = pneumoniamnist_run("chen", tmp_path, 3)
    assert len(epochs) == 3
    assert epochs[-1]["val/loss"] < epochs[0]["val/loss"]
    assert epochs[-1]["val/probe_acc"] > prior + 0.01, f"probe accuracy {epochs[-1]['val/probe_acc']:.3f} vs class prior {prior:.3f}"
    assert (entry / "encoder.safetensors").is_file()
