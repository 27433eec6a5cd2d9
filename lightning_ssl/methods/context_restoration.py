"""Context restoration (Chen et al., Medical Image Analysis 2019): undo swaps of non-overlapping patches."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import OmegaConf

from lightning_ssl.methods.restoration import RestorationMethod
from lightning_ssl.registry import METHODS
from lightning_ssl.schema import MethodConfig
from lightning_ssl.transforms.context import ContextSwap, ContextSwapConfig


@dataclass
class ContextRestorationConfig(MethodConfig):
    """T swaps of two same-sized, never-overlapping patches (patch size None = image size // 8)."""

    name: str = "chen"
    corruption: ContextSwapConfig = field(default_factory=ContextSwapConfig)


@METHODS.register("chen")
class ContextRestorationMethod(RestorationMethod):
    """Encoder-decoder trained with L2 to put swapped patches back; the intensity histogram is unchanged,
    only spatial context is, so the network must learn anatomy (restorations are blurry: an L2 property)."""

    Config = ContextRestorationConfig
    citation = (
        "Chen L, Bentley P, Mori K, Misawa K, Fujiwara M, Rueckert D. Self-supervised learning for medical image "
        "analysis using image context restoration. Medical Image Analysis 58 (2019) 101539."
    )

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        super().__init__(config, data_info, architecture)
        self.swap = ContextSwap(ContextSwapConfig(**OmegaConf.to_container(self.cfg.method.corruption)))

    def corrupt(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``images`` with T pairs of patches swapped."""
        return self.swap(images, generator)
