"""Building a method from config overrides without a Trainer, for unit tests of the methods."""

from __future__ import annotations

from omegaconf import OmegaConf

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods import METHODS
from lightning_ssl.methods.base import BaseMethod


def build_method(method: str, *overrides: str) -> BaseMethod:
    """``METHODS[method]`` for the config resolved from ``overrides`` (phantom data by default)."""
    cfg = build_config([f"method={method}", *overrides])
    info = DATASETS[cfg.data.name](cfg.data).info
    return METHODS[method](OmegaConf.to_container(cfg, resolve=True), info.as_dict())


def small(spatial_dims: int) -> list[str]:
    """Overrides for a small 2D (32x32) or 3D (32x32x16) method with a tiny U-Net."""
    patch = "[32,32]" if spatial_dims == 2 else "[32,32,16]"
    return ["network.features=[4,8,16]", f"data.spatial_dims={spatial_dims}", f"data.patch_size={patch}"]
