"""A 2D/3D U-Net whose encoder and decoder are separate modules, built from MONAI blocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from monai.networks.blocks import UnetBasicBlock, UnetResBlock, UnetUpBlock
from monai.networks.blocks.dynunet_block import UnetOutBlock
from torch import nn

from lightning_ssl.registry import NETWORKS
from lightning_ssl.schema import Choice

FEATURES = (8, 16, 32, 64)


class Norm(Choice):
    batch = "batch"
    instance = "instance"
    group = "group"


@dataclass
class UNetConfig:
    """The 2D/3D U-Net built from MONAI blocks: channels per level (``features``), normalisation, activation,
    dropout, and residual encoder blocks."""

    name: str = "unet"
    features: list[int] = field(default_factory=lambda: list(FEATURES))
    norm: Norm = Norm.instance
    act: str = "relu"
    dropout: float = 0.0
    residual: bool = False


def _act(name: str) -> tuple | str:
    """MONAI activation spec for a short name (leakyrelu uses slope 0.2 as MultiMix does)."""
    if name == "leakyrelu":
        return ("leakyrelu", {"negative_slope": 0.2, "inplace": True})
    return (name, {"inplace": True}) if name in ("relu", "elu") else name


def _norm(name: str) -> tuple | str:
    """MONAI normalisation spec for a short name (instance norm with affine parameters)."""
    name = str(name)
    if name == "instance":
        return ("instance", {"affine": True})
    if name == "group":
        return ("group", {"num_groups": 8})
    return name


class UNetEncoder(nn.Module):
    """Contracting path: one block per level, down-sampling by a strided block after the first.

    Returns the feature maps of every level, finest first; the last one is the bottleneck.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        features: Sequence[int] = FEATURES,
        norm: str = UNetConfig.norm,
        act: str = UNetConfig.act,
        dropout: float = UNetConfig.dropout,
        residual: bool = UNetConfig.residual,
    ) -> None:
        super().__init__()
        block = UnetResBlock if residual else UnetBasicBlock
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.features = list(features)
        self.levels = nn.ModuleList()
        channels = in_channels
        for level, width in enumerate(self.features):
            self.levels.append(
                block(
                    spatial_dims,
                    channels,
                    width,
                    kernel_size=3,
                    stride=1 if level == 0 else 2,
                    norm_name=_norm(norm),
                    act_name=_act(act),
                    dropout=dropout or None,
                )
            )
            channels = width

    @property
    def out_channels(self) -> int:
        """Channels of the bottleneck feature map."""
        return self.features[-1]

    @property
    def downsampling_factor(self) -> int:
        """How many times smaller the bottleneck is than the input along each axis."""
        return 2 ** (len(self.features) - 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every level, finest first."""
        skips = []
        for level in self.levels:
            x = level(x)
            skips.append(x)
        return skips


class UNetDecoder(nn.Module):
    """Expanding path: transposed-conv up-sampling, skip concatenation, a block per level, 1x1 out."""

    def __init__(
        self,
        spatial_dims: int,
        out_channels: int,
        features: Sequence[int] = FEATURES,
        norm: str = UNetConfig.norm,
        act: str = UNetConfig.act,
        dropout: float = UNetConfig.dropout,
    ) -> None:
        super().__init__()
        self.features = list(features)
        self.out_channels = out_channels
        self.stages = nn.ModuleList()
        for deeper, shallower in zip(self.features[::-1][:-1], self.features[::-1][1:]):
            self.stages.append(
                UnetUpBlock(
                    spatial_dims,
                    deeper,
                    shallower,
                    kernel_size=3,
                    stride=1,
                    upsample_kernel_size=2,
                    norm_name=_norm(norm),
                    act_name=_act(act),
                    dropout=dropout or None,
                )
            )
        self.head = UnetOutBlock(spatial_dims, self.features[0], out_channels)

    def forward(self, features: list[torch.Tensor], bottleneck_extra: torch.Tensor | None = None) -> torch.Tensor:
        """Output logits at input resolution from the encoder's feature maps.

        ``bottleneck_extra`` (same shape as the bottleneck) is added before the first stage; it is
        how a method feeds extra information (e.g. a saliency map) into the decoder.
        """
        x = features[-1] if bottleneck_extra is None else features[-1] + bottleneck_extra
        for stage, skip in zip(self.stages, features[::-1][1:]):
            x = _up_and_merge(stage, x, skip)
        return self.head(x)


def _up_and_merge(stage: UnetUpBlock, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """MONAI's ``UnetUpBlock.forward``, cropping the up-sampled map to the skip's size first.

    A stride-2 encoder level maps n voxels to ceil(n / 2), so up-sampling gives n or n + 1: the crop
    lets the U-Net take any input size (28 px MedMNIST images, odd CT crops), not only multiples of 2^levels.
    """
    up = stage.transp_conv(x)
    up = up[(slice(None), slice(None), *(slice(0, size) for size in skip.shape[2:]))]
    return stage.conv_block(torch.cat((up, skip), dim=1))


@NETWORKS.register("unet")
class UNet(nn.Module):
    """Encoder + decoder; ``forward`` returns logits with ``out_channels`` channels (``residual`` applies to the encoder)."""

    Config = UNetConfig

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = 1,
        out_channels: int = 1,
        features: Sequence[int] = FEATURES,
        norm: str = UNetConfig.norm,
        act: str = UNetConfig.act,
        dropout: float = UNetConfig.dropout,
        residual: bool = UNetConfig.residual,
    ) -> None:
        super().__init__()
        shared = dict(features=features, norm=norm, act=act, dropout=dropout)
        self.encoder = UNetEncoder(spatial_dims, in_channels, residual=residual, **shared)
        self.decoder = UNetDecoder(spatial_dims, out_channels, **shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at input resolution."""
        return self.decoder(self.encoder(x))
