"""Converters, registered by name: each turns an official weights file into the network a catalog card describes.

Torch and the networks are imported when a file is converted, not when the catalog is read, so that listing the zoo
(``zoo list``, ``zoo info``) answers without importing them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning_ssl.registry import Registry
from lightning_ssl.zoo.errors import ZooError

if TYPE_CHECKING:
    from torch import nn

Converter = Callable[[Path, Mapping[str, Any]], "nn.Module"]

CONVERTERS: Registry[Converter] = Registry("zoo converter")


def read_weights_only(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers; never a full unpickle."""
    from lightning_ssl.io.checkpoint import UnsafeCheckpointError, load_weights_only

    try:
        return load_weights_only(path)
    except (UnsafeCheckpointError, FileNotFoundError) as error:
        raise ZooError(str(error)) from None


@CONVERTERS.register("models_genesis")
def convert_models_genesis(path: Path, metadata: Mapping[str, Any]) -> nn.Module:
    """An official Models Genesis ``.pt`` (``{"state_dict": {"module.*": ...}, ...}`` or a bare state dict) as the
    GenesisUNet3D that ``metadata["architecture"]`` describes."""
    import torch

    from lightning_ssl.models.genesis_unet import split_official_state_dict
    from lightning_ssl.zoo.network import build_from_metadata, load_exact

    content = read_weights_only(path)
    state = content.get("state_dict", content) if isinstance(content, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ZooError(f"{path} is not a Models Genesis checkpoint: expected a state dict of tensors")
    network = build_from_metadata(metadata)
    for part, weights in split_official_state_dict(dict(state)).items():
        load_exact(getattr(network, part), weights, f"{path} ({part})")
    return network
