"""A 2D/3D ResNet encoder (MONAI's ResNet) that returns the feature maps of its four stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from monai.networks.nets.resnet import ResNet, ResNetBlock, ResNetBottleneck
from torch import nn

from lightning_ssl.registry import NETWORKS

STAGE_BLOCKS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}
WIDTHS = (64, 128, 256, 512)


@dataclass
class ResNetConfig:
    """A 2D/3D ResNet encoder (MONAI ResNet stages); for contrastive methods, no decoder.

    The default stem (3x3, stride 1, no max-pool) keeps detail in small images (28-64 px); use
    ``stem_kernel=7 stem_stride=2 max_pool=true`` for the ImageNet stem on large images.
    """

    name: str = "resnet"
    depth: int = 18
    widths: list[int] = field(default_factory=lambda: list(WIDTHS))
    stem_kernel: int = 3
    stem_stride: int = 1
    max_pool: bool = False
    norm: str = "batch"


class ResNetEncoder(nn.Module):
    """ResNet-10/18/34/50 stages; ``forward`` returns the four stage outputs, finest first.

    ``stem_kernel``/``stem_stride``/``max_pool`` set the first convolution: the default (3, 1, no
    max-pool) keeps detail in 28-64 px images; the ImageNet stem (7, 2, max-pool) suits 128 px and more.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        depth: int = ResNetConfig.depth,
        widths: Sequence[int] = WIDTHS,
        stem_kernel: int = ResNetConfig.stem_kernel,
        stem_stride: int = ResNetConfig.stem_stride,
        max_pool: bool = ResNetConfig.max_pool,
        norm: str = ResNetConfig.norm,
    ) -> None:
        super().__init__()
        if depth not in STAGE_BLOCKS:
            raise ValueError(f"ResNet depth {depth} is not one of {sorted(STAGE_BLOCKS)}")
        if len(widths) != 4:
            raise ValueError(f"a ResNet has 4 stages: widths needs 4 values, got {list(widths)}")
        block = ResNetBottleneck if depth >= 50 else ResNetBlock
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.features = [int(w) * block.expansion for w in widths]
        self.resnet = ResNet(
            block,
            STAGE_BLOCKS[depth],
            list(widths),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_size=stem_kernel,
            conv1_t_stride=stem_stride,
            no_max_pool=not max_pool,
            feed_forward=False,
            norm=norm,
        )
        self._stride = stem_stride * (2 if max_pool else 1)

    @property
    def out_channels(self) -> int:
        """Channels of the last stage's feature map."""
        return self.features[-1]

    @property
    def downsampling_factor(self) -> int:
        """How many times smaller the last feature map is than the input along each axis."""
        return self._stride * 8

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the four stages, finest first."""
        net = self.resnet
        x = net.act(net.bn1(net.conv1(x)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        features = []
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = stage(x)
            features.append(x)
        return features


@NETWORKS.register("resnet")
class ResNetNetwork(nn.Module):
    """A ResNet encoder on its own: it has no decoder, so the zoo publishes only the encoder."""

    Config = ResNetConfig
    has_decoder = False

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, **encoder_kwargs) -> None:
        super().__init__()
        self.encoder = ResNetEncoder(spatial_dims, in_channels, **encoder_kwargs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps."""
        return self.encoder(x)
