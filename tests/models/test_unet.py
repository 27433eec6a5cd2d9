"""The U-Net's encoder and decoder are separate modules that compose in 2D and 3D."""

import pytest
import torch

from lightning_ssl.models import ClassificationHead, UNet, build_network


@pytest.mark.parametrize("spatial_dims,shape", [(2, (2, 3, 32, 48)), (3, (2, 1, 32, 32, 16))])
def test_unet_shapes_in_2d_and_3d(spatial_dims, shape):
    net = UNet(spatial_dims=spatial_dims, in_channels=shape[1], out_channels=2, features=(4, 8, 16, 32))
    features = net.encoder(torch.rand(shape))
    assert [f.shape[1] for f in features] == [4, 8, 16, 32]
    assert features[-1].shape[2:] == tuple(s // 8 for s in shape[2:])
    assert net.encoder.out_channels == 32 and net.encoder.downsampling_factor == 8
    assert net.decoder(features).shape == (shape[0], 2, *shape[2:])


@pytest.mark.parametrize("norm,act,residual", [("instance", "leakyrelu", False), ("group", "relu", True), ("batch", "prelu", False)])
def test_unet_normalisation_activation_and_depth_are_configurable(norm, act, residual):
    net = build_network("unet", spatial_dims=2, in_channels=1, out_channels=1, features=[8, 16, 32], norm=norm, act=act, residual=residual)
    assert len(net.encoder.levels) == 3 and len(net.decoder.stages) == 2
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_decoder_receives_extra_bottleneck_input():
    net = UNet(spatial_dims=2, features=(4, 8)).eval()
    x = torch.rand(1, 1, 16, 16)
    features = net.encoder(x)
    assert not torch.allclose(net.decoder(features), net.decoder(features, torch.ones_like(features[-1])))


def test_classification_head_on_encoder():
    net = UNet(spatial_dims=3, features=(4, 8, 16))
    head = ClassificationHead(net.encoder.out_channels, num_classes=3, hidden=16)
    assert head(net.encoder(torch.rand(2, 1, 16, 16, 8))[-1]).shape == (2, 3)


def test_unknown_network_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="genesis_unet3d"):
        build_network("vnet")


@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (1, 1, 30, 21, 13)])
def test_any_input_size_restores_to_the_same_size(shape):
    network = UNet(spatial_dims=len(shape) - 2, in_channels=1, out_channels=1, features=[4, 8, 16, 32])
    assert network(torch.rand(shape)).shape == shape
