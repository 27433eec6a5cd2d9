"""network=swinunetr: MONAI's Swin UNETR as our encoder and decoder, in 2D and 3D, through the config and the zoo."""

from __future__ import annotations

import pytest
import torch
from method_helpers import build_method, train_one_step
from monai.networks.nets import SwinUNETR as MonaiSwinUNETR

from lightning_ssl import zoo
from lightning_ssl.errors import ConfigError
from lightning_ssl.models import build_network
from lightning_ssl.models.swin_unetr import split_monai_state_dict

TINY = ["network=swinunetr", "network.feature_size=12"]
SIZES = {2: [32, 64], 3: [32, 32, 64]}


def _data(spatial_dims: int) -> list[str]:
    return [f"data.spatial_dims={spatial_dims}", f"data.patch_size=[{','.join(map(str, SIZES[spatial_dims]))}]"]


def _tiny(spatial_dims: int, out_channels: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("swinunetr", spatial_dims=spatial_dims, in_channels=1, out_channels=out_channels, feature_size=12)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_encoder_maps_and_decoder_logits_in_2d_and_3d(spatial_dims: int) -> None:
    network = _tiny(spatial_dims).eval()
    x = torch.rand(2, 1, *SIZES[spatial_dims])
    with torch.no_grad():
        features = network.encoder(x)
        logits = network.decoder(features)
    assert [f.shape[1] for f in features] == network.encoder.features == [1, 12, 24, 48, 96, 192]
    assert [f.shape[2:] for f in features] == [torch.Size([s // 2**level for s in x.shape[2:]]) for level in range(6)]
    assert network.encoder.out_channels == 192 and network.encoder.downsampling_factor == 32
    assert logits.shape == (2, 2, *SIZES[spatial_dims]) and network.decoder.out_channels == 2


def test_same_outputs_as_monai_swinunetr_from_its_state_dict() -> None:
    monai_network = MonaiSwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=2).eval()
    network = _tiny(2).eval()
    parts = split_monai_state_dict(monai_network.state_dict())
    network.encoder.load_state_dict(parts["encoder"])
    network.decoder.load_state_dict(parts["decoder"])
    x = torch.rand(1, 1, 64, 32)
    with torch.no_grad():
        assert torch.equal(network(x), monai_network(x))


def test_bottleneck_extra_reaches_the_decoder() -> None:
    network = _tiny(2).eval()
    with torch.no_grad():
        features = network.encoder(torch.rand(1, 1, 32, 64))
        assert not torch.allclose(network.decoder(features), network.decoder(features, torch.ones_like(features[-1])))


def _moved(method, before: dict[str, torch.Tensor], prefix: str) -> bool:
    """Whether any parameter whose name starts with ``prefix`` differs from ``before``."""
    return any(not torch.equal(p, before[name]) for name, p in method.named_parameters() if name.startswith(prefix))


@pytest.mark.parametrize(
    "method_name,spatial_dims",
    [("genesis", 2), ("chen", 2), ("simclr", 2), pytest.param("genesis", 3, marks=pytest.mark.slow), pytest.param("chen", 3, marks=pytest.mark.slow)],
)
def test_one_training_step_through_the_config(method_name: str, spatial_dims: int) -> None:
    method = build_method(method_name, *TINY, *_data(spatial_dims))
    loss, before = train_one_step(method, torch.rand(2, 1, *SIZES[spatial_dims]))
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in method.network.parameters())
    assert _moved(method, before, "network.encoder.")
    assert method_name == "simclr" or _moved(method, before, "network.decoder.")
    assert method.architecture["name"] == "swinunetr" and method.architecture["kwargs"]["feature_size"] == 12


def test_contrastive_methods_keep_only_the_swin_encoder() -> None:
    method = build_method("byol", *TINY, *_data(2))
    assert not hasattr(method.network, "decoder")
    assert method.network.encoder.out_channels == 192


def test_published_network_loads_back_with_identical_outputs(tmp_path) -> None:
    network = _tiny(2).eval()
    kwargs = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, "feature_size": 12}
    zoo.publish_network("tiny_swin", network, {"architecture": {"name": "swinunetr", "kwargs": kwargs}}, store=tmp_path)
    x = torch.rand(2, 1, 32, 64)
    with torch.no_grad():
        assert torch.equal(zoo.load("tiny_swin", part="model", store=tmp_path)(x), network(x))
        features = zoo.load("tiny_swin", part="encoder", store=tmp_path)(x)
        assert all(torch.equal(got, want) for got, want in zip(features, network.encoder(x)))
        assert torch.equal(zoo.load("tiny_swin", part="decoder", store=tmp_path)(features), network(x))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.patch_size=[48,40]"], r"needs data.patch_size divisible by 32 .*use e.g. data.patch_size=\[64,32\]"),
        (["data.patch_size=[32,32]"], r"with instance norm needs data.patch_size above 32 .*data.patch_size=\[64,32\]"),
        (["network.feature_size=20"], r"network.feature_size=20 must be a multiple of 12"),
        (["network.num_heads=[5,6,12,24]"], r"network.num_heads\[0\]=5 must divide the 12 channels"),
        (["network.depths=[2,2,2]"], r"network.depths and network.num_heads need 4 values"),
        (["network.dropout_path_rate=2"], r"network=swinunetr: drop path rate should be between 0 and 1"),
        (["network.norm_name=group"], r"invalid value for 'network.norm_name'.*expected one of \[instance, batch\]"),
        (["network.feature_sise=12"], r"unknown config key 'network.feature_sise'.*did you mean network.feature_size"),
    ],
)
def test_bad_sizes_and_options_fail_with_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        build_method("genesis", *TINY, "data.spatial_dims=2", "data.patch_size=[32,64]", *overrides)
    assert "\n" not in str(error.value)


def test_batch_norm_takes_a_single_bottleneck_voxel() -> None:
    method = build_method("genesis", *TINY, "network.norm_name=batch", "data.spatial_dims=2", "data.patch_size=[32,32]")
    assert method.network(torch.rand(2, 1, 32, 32)).shape == (2, 1, 32, 32)
