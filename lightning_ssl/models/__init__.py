"""Networks with a separable encoder and decoder, and how to rebuild one from its description."""

from __future__ import annotations

from typing import Any

from torch import nn

from lightning_ssl.models.genesis_unet import GenesisUNet3D
from lightning_ssl.models.heads import ClassificationHead, EncoderClassifier
from lightning_ssl.models.unet import UNet, UNetDecoder, UNetEncoder

NETWORKS: dict[str, type[nn.Module]] = {"unet": UNet, "genesis_unet3d": GenesisUNet3D}


def build_network(name: str, **kwargs: Any) -> nn.Module:
    """Build the network registered under ``name``; it has ``encoder`` and ``decoder`` attributes."""
    if name not in NETWORKS:
        raise KeyError(f"unknown network {name!r}; known: {', '.join(sorted(NETWORKS))}")
    return NETWORKS[name](**kwargs)


__all__ = [
    "NETWORKS",
    "build_network",
    "UNet",
    "UNetEncoder",
    "UNetDecoder",
    "GenesisUNet3D",
    "ClassificationHead",
    "EncoderClassifier",
]
