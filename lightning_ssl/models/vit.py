"""MONAI's Vision Transformer as an encoder: its tokens laid back on the patch grid as a (B, C, *grid) feature map."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from monai.networks.nets import ViT
from torch import nn

from lightning_ssl.errors import ConfigError
from lightning_ssl.models.options import build_monai, config_options, require_multiple
from lightning_ssl.registry import NETWORKS
from lightning_ssl.schema import Choice


class PatchProjection(Choice):
    conv = "conv"
    perceptron = "perceptron"


class PositionEmbedding(Choice):
    none = "none"
    learnable = "learnable"
    sincos = "sincos"
    fourier = "fourier"


@dataclass
class ViTConfig:
    """MONAI's Vision Transformer as an encoder (no decoder), for joint-embedding methods and classification.

    The ViT of Dosovitskiy et al. (ICLR 2021): the image cut into patches, one token each, a transformer over the tokens.

    Defaults are MONAI's (ViT-B: 768 channels, 12 layers of 12 heads, MLP 3072, convolutional patch projection, learnt
    position embeddings) with the 16-voxel patches of MONAI's self-supervised ViT tutorial. ``img_size``: the input size the
    position embeddings are made for; ``None`` takes ``data.patch_size`` (a zoo entry keeps the size it was
    trained at). Every axis of ``data.patch_size`` must be a multiple of ``patch_size``.
    """

    name: str = "vit"
    img_size: Optional[list[int]] = None
    patch_size: int = 16
    hidden_size: int = 768
    mlp_dim: int = 3072
    num_layers: int = 12
    num_heads: int = 12
    proj_type: PatchProjection = PatchProjection.conv
    pos_embed_type: PositionEmbedding = PositionEmbedding.learnable
    dropout_rate: float = 0.0
    qkv_bias: bool = False


class ViTEncoder(nn.Module):
    """MONAI's ViT; ``forward`` returns one feature map, the final (layer-normed) tokens as (B, hidden_size, *grid)."""

    def __init__(self, spatial_dims: int, in_channels: int, **options: Any) -> None:
        super().__init__()
        settings = config_options("vit", ViTConfig, options)
        img_size = settings.pop("img_size")
        if not img_size or len(img_size) != spatial_dims:
            raise ConfigError(f"network=vit needs img_size with {spatial_dims} values (the input size; a method takes data.patch_size)")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.features = [settings["hidden_size"]]
        self.downsampling_factor = settings["patch_size"]
        self.img_size = [int(size) for size in img_size]
        self.grid = [size // settings["patch_size"] for size in self.img_size]
        self.vit = build_monai(
            "vit", ViT, in_channels=in_channels, img_size=self.img_size, spatial_dims=spatial_dims, classification=False, **settings
        )
        # MONAI's transformer blocks hold a LayerNorm for cross-attention even when there is none: it would be a
        # parameter no loss reaches, which multi-process (DDP) runs refuse, so the unused norm is dropped.
        for block in self.vit.blocks:
            if not block.with_cross_attention:
                block.norm_cross_attn = nn.Identity()

    @property
    def out_channels(self) -> int:
        """Channels of the feature map (the transformer's hidden size)."""
        return self.features[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tokens, in patch-grid order, as a feature map (B, hidden_size, *grid)."""
        if list(x.shape[2:]) != self.img_size:
            raise ConfigError(
                f"network=vit takes inputs of {self.img_size} only (network.img_size, the size its position embeddings "
                f"were made for), got {list(x.shape[2:])}: smaller views (method.views.small_crops) cannot go through a ViT"
            )
        tokens, _ = self.vit(x)
        return [tokens.transpose(1, 2).reshape(x.shape[0], self.out_channels, *self.grid)]


@NETWORKS.register("vit")
class ViTNetwork(nn.Module):
    """A ViT encoder on its own: it has no decoder, so the zoo publishes only the encoder."""

    Config = ViTConfig
    has_decoder = False

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, **encoder_options: Any) -> None:
        super().__init__()
        self.encoder = ViTEncoder(spatial_dims, in_channels, **encoder_options)

    @classmethod
    def input_arguments(cls, kwargs: dict[str, Any], patch_size: Sequence[int]) -> dict[str, Any]:
        """``img_size`` = the data's patch size, which must be a multiple of ``network.patch_size`` (and equal the
        ``img_size`` a zoo entry was trained at); a ConfigError naming ``data.patch_size`` otherwise."""
        size = [int(s) for s in patch_size]
        trained = kwargs.get("img_size")
        if trained is not None and [int(s) for s in trained] != size:
            wanted = ",".join(str(int(s)) for s in trained)
            raise ConfigError(
                f"network=vit was made for inputs of {list(trained)} (network.img_size; its position embeddings fit that "
                f"size only) but data.patch_size is {size}: set data.patch_size=[{wanted}]"
            )
        multiple = int(kwargs.get("patch_size", ViTConfig.patch_size))
        require_multiple("vit", size, multiple, f"its {multiple}-voxel patches, network.patch_size")
        return {"img_size": size}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature map, in a list."""
        return self.encoder(x)
