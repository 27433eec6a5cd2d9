"""MONAI's Swin UNETR (Hatamizadeh et al. 2022), 2D or 3D, split into our encoder and decoder.

The modules are MONAI's own, taken from a ``monai.networks.nets.SwinUNETR``. The encoder is its Swin transformer
(``swinViT``), the part Swin UNETR's self-supervised pretraining trains; the decoder holds every convolutional block
(``encoder*`` on the skips, ``decoder*``, ``out``). So a pooled bottleneck trains every encoder parameter (SimCLR and
BYOL under DDP leave none unused), and module names are MONAI's: a MONAI SwinUNETR state dict loads key for key once
split by :func:`split_monai_state_dict`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from monai.networks.nets.swin_unetr import SwinUNETR as MonaiSwinUNETR
from torch import nn

from lightning_ssl.errors import ConfigError
from lightning_ssl.models.options import build_monai, config_options, require_multiple
from lightning_ssl.registry import NETWORKS
from lightning_ssl.schema import Choice

ENCODER_MODULE = "swinViT"
PATCH_SIZE = 2
STAGES = 4
INPUT_MULTIPLE = PATCH_SIZE * 2**STAGES


class SwinNorm(Choice):
    instance = "instance"
    batch = "batch"


class Downsample(Choice):
    merging = "merging"
    mergingv2 = "mergingv2"


@dataclass
class SwinUNETRConfig:
    """MONAI's Swin UNETR: a Swin transformer encoder (4 stages of shifted-window attention) and a convolutional
    U-Net-like decoder. Defaults are the Swin UNETR self-supervised pretraining recipe (feature size 48,
    2-voxel patches, 7-voxel windows, depths 2-2-2-2, heads 3-6-12-24, drop path 0.1); the recipe's gradient
    checkpointing (``use_checkpoint``) saves memory at the cost of time and is off here.

    ``feature_size`` must be a multiple of 12; every axis of ``data.patch_size`` a multiple of 32.
    """

    name: str = "swinunetr"
    feature_size: int = 48
    depths: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    num_heads: list[int] = field(default_factory=lambda: [3, 6, 12, 24])
    window_size: int = 7
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_name: SwinNorm = SwinNorm.instance
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    dropout_path_rate: float = 0.1
    normalize: bool = True
    patch_norm: bool = False
    downsample: Downsample = Downsample.merging
    use_v2: bool = False
    use_checkpoint: bool = False


class SwinUNETREncoder(nn.Module):
    """The Swin transformer of MONAI's ``network``.

    Returns six maps, finest first: the input itself (the decoder's full-resolution block reads it), then the
    outputs of the patch embedding and of the four Swin stages, feature_size x 1, 2, 4, 8, 16 channels at 1/2 ...
    1/32 of the input; the last is the bottleneck.
    """

    downsampling_factor = INPUT_MULTIPLE

    def __init__(self, network: MonaiSwinUNETR, spatial_dims: int, in_channels: int, feature_size: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.features = [in_channels, *(feature_size * 2**level for level in range(STAGES + 1))]
        self.normalize = network.normalize
        self.swinViT = network.swinViT  # MONAI's name, so its state dicts map key for key

    @property
    def out_channels(self) -> int:
        """Channels of the bottleneck feature map."""
        return self.features[-1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input and the Swin transformer's five outputs, finest first."""
        return [x, *self.swinViT(x, self.normalize)]


class SwinUNETRDecoder(nn.Module):
    """The convolutional blocks of MONAI's ``network``: one per skip, one on the bottleneck, the up-sampling blocks and
    the output block; returns logits at input resolution (the wiring of MONAI's ``SwinUNETR.forward``)."""

    def __init__(self, network: MonaiSwinUNETR, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.encoder1, self.encoder2 = network.encoder1, network.encoder2
        self.encoder3, self.encoder4 = network.encoder3, network.encoder4
        self.encoder10 = network.encoder10
        self.decoder5, self.decoder4, self.decoder3 = network.decoder5, network.decoder4, network.decoder3
        self.decoder2, self.decoder1 = network.decoder2, network.decoder1
        self.out = network.out

    def forward(self, features: list[torch.Tensor], bottleneck_extra: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from the encoder's six maps; ``bottleneck_extra`` (shaped as the bottleneck) is added to it first."""
        image, hidden0, hidden1, hidden2, hidden3, bottleneck = features
        if bottleneck_extra is not None:
            bottleneck = bottleneck + bottleneck_extra
        x = self.decoder5(self.encoder10(bottleneck), hidden3)
        x = self.decoder4(x, self.encoder4(hidden2))
        x = self.decoder3(x, self.encoder3(hidden1))
        x = self.decoder2(x, self.encoder2(hidden0))
        x = self.decoder1(x, self.encoder1(image))
        return self.out(x)


@NETWORKS.register("swinunetr")
class SwinUNETR(nn.Module):
    """Swin UNETR encoder + decoder; ``forward`` returns logits with ``out_channels`` channels.

    Inputs need every axis divisible by 32 (2-voxel patches, then 4 halvings).
    """

    Config = SwinUNETRConfig

    def __init__(self, spatial_dims: int = 3, in_channels: int = 1, out_channels: int = 1, **options: Any) -> None:
        super().__init__()
        settings = config_options("swinunetr", SwinUNETRConfig, options)
        _check_stages(settings)
        # MONAI's SwinTransformer reads its drop-path rates with .item(), which the meta device (where the zoo checks
        # that an architecture rebuilds) cannot give: there the network is built on the CPU.
        on_meta = torch.empty(0).device.type == "meta"
        with torch.device("cpu") if on_meta else contextlib.nullcontext():
            network = build_monai(
                "swinunetr",
                MonaiSwinUNETR,
                in_channels=in_channels,
                out_channels=out_channels,
                patch_size=PATCH_SIZE,
                spatial_dims=spatial_dims,
                **settings,
            )
        self.encoder = SwinUNETREncoder(network, spatial_dims, in_channels, settings["feature_size"])
        self.decoder = SwinUNETRDecoder(network, out_channels)

    @classmethod
    def input_arguments(cls, kwargs: dict[str, Any], patch_size: Sequence[int]) -> dict[str, Any]:
        """Nothing taken from the data; a ConfigError naming ``data.patch_size`` unless every axis is a multiple of 32
        and, with instance norm, the bottleneck (1/32 of the input) has more than one voxel to normalise."""
        require_multiple("swinunetr", patch_size, INPUT_MULTIPLE, f"{PATCH_SIZE}-voxel patches then {STAGES} halvings")
        norm = str(kwargs.get("norm_name", SwinUNETRConfig.norm_name))
        if norm == SwinNorm.instance and all(int(size) == INPUT_MULTIPLE for size in patch_size):
            larger = ",".join([str(2 * INPUT_MULTIPLE)] + [str(INPUT_MULTIPLE)] * (len(patch_size) - 1))
            raise ConfigError(
                f"network=swinunetr with instance norm needs data.patch_size above {INPUT_MULTIPLE} along one axis at least "
                f"(its bottleneck, 1/{INPUT_MULTIPLE} of the input, would be one voxel): use e.g. data.patch_size=[{larger}]"
            )
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at input resolution."""
        return self.decoder(self.encoder(x))


def _check_stages(settings: dict[str, Any]) -> None:
    """ConfigError naming the ``network.*`` key of a stage layout the Swin transformer cannot be built or run with."""
    if settings["feature_size"] % 12:
        raise ConfigError(f"network.feature_size={settings['feature_size']} must be a multiple of 12 (e.g. 12, 24, 48)")
    if len(settings["depths"]) != STAGES or len(settings["num_heads"]) != STAGES:
        raise ConfigError(f"network.depths and network.num_heads need {STAGES} values each, one per Swin stage")
    for stage, heads in enumerate(settings["num_heads"]):
        width = settings["feature_size"] * 2**stage
        if width % heads:
            raise ConfigError(f"network.num_heads[{stage}]={heads} must divide the {width} channels of Swin stage {stage + 1}")


def split_monai_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A MONAI ``SwinUNETR`` state dict (with or without ``module.``) as the state dicts of our encoder and decoder."""
    parts: dict[str, dict[str, torch.Tensor]] = {"encoder": {}, "decoder": {}}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        parts["encoder" if key.split(".", 1)[0] == ENCODER_MODULE else "decoder"][key] = value
    return parts
