"""Loading zoo weights onto a user's own module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets import BasicUNet, resnet18
from torch import nn
from zoo_helpers import small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.models import build_network


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


RESNET_KWARGS = {"spatial_dims": 2, "in_channels": 1, "depth": 18}


@pytest.fixture(scope="module")
def resnet_entry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """A ResNet-18 encoder published as ``res@v1`` (MONAI's ResNet under ``resnet.``)."""
    store = tmp_path_factory.mktemp("resnet_store")
    torch.manual_seed(0)
    network = build_network("resnet", **RESNET_KWARGS)
    zoo.publish_network("res", network, {"architecture": {"name": "resnet", "kwargs": RESNET_KWARGS}}, store=store)
    return store, network


def monai_resnet18(**kwargs: object) -> nn.Module:
    """MONAI's resnet18 laid out like the zoo's (3x3 stem, stride 1, no max-pool)."""
    return resnet18(spatial_dims=2, n_input_channels=1, conv1_t_size=3, conv1_t_stride=1, no_max_pool=True, **kwargs)


def test_resnet_entry_loads_into_monai_resnet18_under_its_prefix(resnet_entry: tuple[Path, nn.Module]) -> None:
    store, network = resnet_entry
    target = monai_resnet18(feed_forward=False)
    report = zoo.load_into(target, "res", store=store)
    assert len(report.loaded) == len(target.state_dict()) == 123
    assert report.missing == [] and report.unexpected == [] and report.fraction == 1.0
    assert (report.zoo_prefix, report.module_prefix) == ("resnet.", "")
    assert "zoo keys resnet.* onto module keys (no prefix)*" in str(report)
    for key, value in target.state_dict().items():
        assert torch.equal(value, network.encoder.resnet.state_dict()[key])


def test_a_classifier_head_is_missing_under_strict_and_left_out_otherwise(resnet_entry: tuple[Path, nn.Module]) -> None:
    store, network = resnet_entry
    target = monai_resnet18(feed_forward=True, num_classes=3)
    with pytest.raises(zoo.ZooMismatchError, match=r"missing in the zoo weights \['fc.weight', 'fc.bias'\]"):
        zoo.load_into(target, "res", store=store)
    report = zoo.load_into(target, "res", store=store, strict=False)
    assert report.missing == ["fc.weight", "fc.bias"] and len(report.loaded) == 123 and report.fraction > 0.99


def test_a_network_sharing_no_names_raises_one_line_and_loads_nothing(store: Path, published: nn.Module) -> None:
    target = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(4, 8, 16, 32, 64, 4))
    before = {key: value.clone() for key, value in target.state_dict().items()}
    for strict in (True, False):
        with pytest.raises(zoo.ZooMismatchError) as raised:
            zoo.load_into(target, "small", store=store, strict=strict)
        message = str(raised.value)
        assert message.startswith("small@v1 (encoder) fits only 0% of the module's parameters (0 of ")
        assert "min_loaded=0.9" in message and "'unet'" in message and "\n" not in message
    assert all(torch.equal(before[key], value) for key, value in target.state_dict().items())


def test_min_loaded_zero_loads_a_partial_match(store: Path, published: nn.Module) -> None:
    target = nn.ModuleDict({"backbone": small_unet(seed=9).encoder, "head": nn.Linear(16, 1000)})
    with pytest.raises(zoo.ZooMismatchError, match="fits only"):
        zoo.load_into(target, "small", store=store, strict=False)
    report = zoo.load_into(target, "small", store=store, strict=False, min_loaded=0)
    assert report.module_prefix == "backbone." and report.missing == ["head.weight", "head.bias"]
    for key, value in published.encoder.state_dict().items():
        assert torch.equal(target.backbone.state_dict()[key], value)
