"""The Models Genesis 3D U-Net, laid out so the official ``Genesis_Chest_CT.pt`` loads key for key.

Module names mirror the authors' PyTorch code (``down_tr64.ops.0.conv1.weight`` ...
``out_tr.final_conv.weight``); the encoder holds the ``down_tr*`` modules and the decoder the
``up_tr*`` and ``out_tr`` modules, so each part loads on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_ssl.models.options import require_multiple
from lightning_ssl.registry import NETWORKS

OFFICIAL_PREFIX = "module."
ENCODER_MODULES = ("down_tr64", "down_tr128", "down_tr256", "down_tr512")


class BatchStatsNorm3d(nn.BatchNorm3d):
    """BatchNorm that normalises with the batch's statistics in training and evaluation alike.

    The official network does this; keeping it preserves the behaviour its weights were trained with.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` with its own batch statistics (running statistics are still updated)."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps)


class ConvBNReLU(nn.Module):
    """3x3x3 convolution, batch-statistics norm, ReLU (the official ``LUConv``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn1 = BatchStatsNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve, normalise, activate."""
        return F.relu(self.bn1(self.conv1(x)))


def _two_convs(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(ConvBNReLU(in_channels, mid_channels), ConvBNReLU(mid_channels, out_channels))


class DownLevel(nn.Module):
    """Two convolutions; the output is max-pooled unless this is the bottleneck."""

    def __init__(self, in_channels: int, depth: int) -> None:
        super().__init__()
        width = 32 * 2**depth
        self.ops = _two_convs(in_channels, width, 2 * width)
        self.pool = depth < 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before pooling (the pooling happens in the encoder)."""
        return self.ops(x)


class UpLevel(nn.Module):
    """Transposed-conv up-sampling, skip concatenation, two convolutions."""

    def __init__(self, in_channels: int, depth: int) -> None:
        super().__init__()
        width = 32 * 2 ** (depth + 1)
        self.up_conv = nn.ConvTranspose3d(in_channels, in_channels, kernel_size=2, stride=2)
        self.ops = _two_convs(in_channels + in_channels // 2, width, width)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Up-sample ``x``, join ``skip``, convolve."""
        return self.ops(torch.cat((self.up_conv(x), skip), dim=1))


class OutLevel(nn.Module):
    """1x1x1 convolution to the output channels (logits; the sigmoid is the method's)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.final_conv = nn.Conv3d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.final_conv(x)


class GenesisEncoder(nn.Module):
    """Contracting path 64/128/256/512 with three max-pools; returns the four feature maps."""

    spatial_dims = 3
    downsampling_factor = 8

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.down_tr64 = DownLevel(in_channels, 0)
        self.down_tr128 = DownLevel(64, 1)
        self.down_tr256 = DownLevel(128, 2)
        self.down_tr512 = DownLevel(256, 3)

    @property
    def out_channels(self) -> int:
        """Channels of the bottleneck feature map."""
        return 512

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of every level, finest first (64, 128, 256, 512 channels)."""
        features = []
        for level in (self.down_tr64, self.down_tr128, self.down_tr256, self.down_tr512):
            x = level(x)
            features.append(x)
            if level.pool:
                x = F.max_pool3d(x, 2)
        return features


class GenesisDecoder(nn.Module):
    """Expanding path of the official network; returns logits."""

    def __init__(self, out_channels: int = 1) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.up_tr256 = UpLevel(512, 2)
        self.up_tr128 = UpLevel(256, 1)
        self.up_tr64 = UpLevel(128, 0)
        self.out_tr = OutLevel(64, out_channels)

    def forward(self, features: list[torch.Tensor], bottleneck_extra: torch.Tensor | None = None) -> torch.Tensor:
        """Logits at input resolution from the encoder's four feature maps."""
        skip64, skip128, skip256, x = features
        if bottleneck_extra is not None:
            x = x + bottleneck_extra
        x = self.up_tr256(x, skip256)
        x = self.up_tr128(x, skip128)
        x = self.up_tr64(x, skip64)
        return self.out_tr(x)


@dataclass
class GenesisUNetConfig:
    """The Models Genesis 3D U-Net layout (loads the official weights); it has no options."""

    name: str = "genesis_unet3d"


@NETWORKS.register("genesis_unet3d")
class GenesisUNet3D(nn.Module):
    """The Models Genesis 3D U-Net (about 19 M parameters); inputs divisible by 8 along each axis."""

    Config = GenesisUNetConfig

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        if spatial_dims != 3:
            raise ValueError("genesis_unet3d is a 3D network: use network.name=unet for 2D data")
        self.encoder = GenesisEncoder(in_channels)
        self.decoder = GenesisDecoder(out_channels)

    @classmethod
    def input_arguments(cls, kwargs: dict[str, Any], patch_size: Sequence[int]) -> dict[str, Any]:
        """Nothing taken from the data; a ConfigError naming ``data.patch_size`` unless every axis is a multiple of 8."""
        require_multiple("genesis_unet3d", patch_size, GenesisEncoder.downsampling_factor, "three 2x max-pools")
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at input resolution."""
        return self.decoder(self.encoder(x))


def split_official_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Split an official state dict (with or without ``module.``) into encoder and decoder parts."""
    parts: dict[str, dict[str, torch.Tensor]] = {"encoder": {}, "decoder": {}}
    for key, value in state_dict.items():
        key = key.removeprefix(OFFICIAL_PREFIX)
        part = "encoder" if key.split(".", 1)[0] in ENCODER_MODULES else "decoder"
        parts[part][key] = value
    return parts
