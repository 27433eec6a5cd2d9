"""Loading zoo weights onto a user's own module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from zoo_helpers import small_unet, unet_metadata

from lightning_ssl import zoo


class WrappedEncoder(nn.Module):
    """A user's network: the zoo encoder's levels plus a head the zoo does not have."""

    def __init__(self) -> None:
        super().__init__()
        self.levels = small_unet(seed=5).encoder.levels
        self.head = nn.Linear(16, 3)


@pytest.fixture
def published(store: Path) -> nn.Module:
    """A small U-Net published as ``small@v1``."""
    network = small_unet(seed=1)
    zoo.publish_network("small", network, unet_metadata(), store=store)
    return network


def test_exact_match_loads_every_key(store: Path, published: nn.Module) -> None:
    target = small_unet(seed=9).encoder
    report = zoo.load_into(target, "small", store=store)
    assert report.loaded == list(published.encoder.state_dict())
    assert report.missing == [] and report.unexpected == []
    assert report.source == "small@v1" and report.part == "encoder"
    for key, value in published.encoder.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_model_part_uses_encoder_and_decoder_prefixes(store: Path, published: nn.Module) -> None:
    target = small_unet(seed=9)
    report = zoo.load_into(target, "small", part="model", store=store)
    assert report.loaded == list(published.state_dict())
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(target.eval()(x), published(x))


def test_non_strict_reports_missing_and_unexpected(store: Path, published: nn.Module) -> None:
    target = WrappedEncoder()
    del target.levels[2]
    report = zoo.load_into(target, "small", store=store, strict=False)
    assert report.missing == ["head.weight", "head.bias"]
    assert report.unexpected and all(key.startswith("levels.2.") for key in report.unexpected)
    assert report.loaded and all(key.startswith(("levels.0.", "levels.1.")) for key in report.loaded)
    for key in report.loaded:
        assert torch.equal(target.state_dict()[key], published.encoder.state_dict()[key])
    assert "2 missing" in str(report)


def test_strict_raises_listing_the_keys_and_loads_nothing(store: Path, published: nn.Module) -> None:
    target = WrappedEncoder()
    before = {key: value.clone() for key, value in target.state_dict().items()}
    with pytest.raises(ValueError, match=r"missing in the zoo weights \['head.weight', 'head.bias'\]"):
        zoo.load_into(target, "small", store=store)
    assert all(torch.equal(before[key], value) for key, value in target.state_dict().items())


def test_shape_mismatch_raises_with_both_shapes(store: Path, published: nn.Module) -> None:
    target = small_unet(seed=9).encoder
    target.levels[0].conv1.conv = nn.Conv2d(1, 6, kernel_size=3, padding=1, bias=False)
    with pytest.raises(ValueError) as raised:
        zoo.load_into(target, "small", store=store, strict=False)
    message = str(raised.value)
    assert "levels.0.conv1.conv.weight: zoo (4, 1, 3, 3) vs module (6, 1, 3, 3)" in message
