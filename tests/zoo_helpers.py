"""Small networks and metadata shared by the zoo tests."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from lightning_ssl.models import GenesisUNet3D, build_network


def module(name: str) -> ModuleType:
    """A zoo submodule (``zoo.publish`` etc. are shadowed by the functions of the same name)."""
    return importlib.import_module(name)


def unet_kwargs(spatial_dims: int) -> dict[str, Any]:
    """A small U-Net's architecture kwargs."""
    return {"spatial_dims": spatial_dims, "in_channels": 1, "out_channels": 2, "features": [4, 8, 16]}


def small_unet(spatial_dims: int = 2, seed: int = 0) -> nn.Module:
    """A small U-Net with random weights and non-trivial norm statistics."""
    torch.manual_seed(seed)
    network = build_network("unet", **unet_kwargs(spatial_dims))
    for name, buffer in network.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            buffer.copy_(torch.rand_like(buffer) + 0.5)
    return network.eval()


def unet_metadata(spatial_dims: int = 2, **extra: Any) -> dict[str, Any]:
    """Metadata for :func:`small_unet`."""
    return {"architecture": {"name": "unet", "kwargs": unet_kwargs(spatial_dims)}, **extra}


def official_genesis_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random GenesisUNet3D encoder + decoder state dict with the official checkpoint's ``module.`` keys."""
    torch.manual_seed(seed)
    network = GenesisUNet3D()
    parts = {**network.encoder.state_dict(), **network.decoder.state_dict()}
    return {f"module.{key}": value for key, value in parts.items()}


def random_input(spatial_dims: int) -> torch.Tensor:
    """A batch of two 16-pixel images or volumes."""
    return torch.randn(2, 1, *([16] * spatial_dims))


@dataclass
class Server:
    """A local HTTP server over a directory that logs requests and can ignore Range or fail first."""

    root: Path
    url: str
    requests: list[dict[str, str]] = field(default_factory=list)
    support_range: bool = True
    fail_first: int = 0
    cut_after: int | None = None

    def file_url(self, name: str) -> str:
        """URL of ``root/name``."""
        return f"{self.url}/{name}"
