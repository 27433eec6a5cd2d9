"""Networks with a separable encoder and decoder, each registered by name (``network=NAME``) beside its ``Config``,
and how to rebuild one from its description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from lightning_ssl.models.genesis_unet import GenesisUNet3D
from lightning_ssl.models.heads import MLP, ClassificationHead, MetadataHead, OnlineProbe
from lightning_ssl.models.resnet import ResNetEncoder, ResNetNetwork
from lightning_ssl.models.swin_unetr import SwinUNETR, SwinUNETRDecoder, SwinUNETREncoder
from lightning_ssl.models.unet import UNet, UNetDecoder, UNetEncoder
from lightning_ssl.models.vit import ViTEncoder, ViTNetwork
from lightning_ssl.registry import NETWORKS


def has_decoder(name: str) -> bool:
    """Whether the network registered under ``name`` has a decoder (a ResNet has none)."""
    return getattr(NETWORKS.get(name), "has_decoder", True)


def input_arguments(name: str, kwargs: dict[str, Any], patch_size: Sequence[int]) -> dict[str, Any]:
    """What the network registered under ``name`` (built with ``kwargs``) takes from the data's patch size (a ViT's
    ``img_size``); a ConfigError naming ``data.patch_size`` when it cannot take inputs of that size."""
    arguments = getattr(NETWORKS.get(name), "input_arguments", None)
    return arguments(kwargs, patch_size) if arguments else {}


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
    "SwinUNETR",
    "SwinUNETRDecoder",
    "SwinUNETREncoder",
    "UNet",
    "UNetDecoder",
    "UNetEncoder",
    "ViTEncoder",
    "ViTNetwork",
    "build_network",
    "has_decoder",
    "input_arguments",
]
