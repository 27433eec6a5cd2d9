"""Models Genesis: restore images from a random composition of corruptions (Zhou et al., MICCAI 2019)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lightning_ssl.methods.restoration import RestorationMethod
from lightning_ssl.registry import METHODS
from lightning_ssl.schema import MethodConfig
from lightning_ssl.transforms.genesis import GenesisCorruption, GenesisCorruptionConfig


@dataclass
class GenesisConfig(MethodConfig):
    """Corruption probabilities (official defaults) of Models Genesis."""

    name: str = "genesis"
    corruption: GenesisCorruptionConfig = field(default_factory=GenesisCorruptionConfig)


@METHODS.register("genesis")
class GenesisMethod(RestorationMethod):
    """Encoder-decoder trained with MSE to restore the original from its corrupted version (sigmoid output)."""

    Config = GenesisConfig
    citation = (
        "Zhou Z, Sodha V, Rahman Siddiquee MM, et al. Models Genesis: Generic Autodidactic Models for 3D Medical "
        "Image Analysis. MICCAI 2019; and Medical Image Analysis 67 (2021) 101840."
    )

    def __init__(self, config: dict[str, Any], data_info: dict[str, Any], architecture: dict[str, Any] | None = None) -> None:
        super().__init__(config, data_info, architecture)
        self.corruption = GenesisCorruption(GenesisCorruptionConfig(**self.cfg.method.corruption))

    def corrupt(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flip, local shuffle, Bezier intensity, in-/out-painting with the official probabilities."""
        corrupted, _ = self.corruption(images, generator)
        return corrupted
