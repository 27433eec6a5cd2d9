"""Networks with a separable encoder and decoder, each registered by name (``network=NAME``) beside its ``Config``,
and how to rebuild one from its description."""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_ssl.models.genesis_unet import GenesisUNet3D
from lightning_ssl.models.heads import MLP, ClassificationHead, MetadataHead, OnlineProbe
from lightning_ssl.models.resnet import ResNetEncoder, ResNetNetwork
from lightning_ssl.models.unet import UNet, UNetDecoder, UNetEncoder
from lightning_ssl.registry import NETWORKS


def has_decoder(name: str) -> bool:
    """Whether the network registered under ``name`` has a decoder (a ResNet has none)."""
    return getattr(NETWORKS.get(name), "has_decoder", True)


def build_network(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered under ``name``; it has an ``encoder`` and, unless ``has_decoder`` is false, a ``decoder``."""
    return NETWORKS.get(name)(**kwargs)


__all__ = [
    "MLP",
    "NETWORKS",
    "ClassificationHead",
    "GenesisUNet3D",
    "MetadataHead",
    "OnlineProbe",
    "ResNetEncoder",
    "ResNetNetwork",
    "UNet",
    "UNetDecoder",
    "UNetEncoder",
    "build_network",
    "has_decoder",
]
