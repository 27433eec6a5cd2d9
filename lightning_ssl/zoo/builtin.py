"""Names the project knows how to fetch, and how each source file becomes a network."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightning_ssl.io.checkpoint import UnsafeCheckpointError, load_weights_only
from lightning_ssl.models import GenesisUNet3D
from lightning_ssl.models.genesis_unet import split_official_state_dict
from lightning_ssl.zoo.errors import ZooError
from lightning_ssl.zoo.network import load_exact
from lightning_ssl.zoo.store import validate_name

Converter = Callable[[Path], tuple[nn.Module, dict[str, Any]]]


@dataclass(frozen=True)
class BuiltinEntry:
    """Where a built-in entry's weights come from and how they become a network with metadata.

    ``sha256`` pins the downloaded file; when None, the checksum of the first successful download
    is recorded and every later file must match it (trust on first use).
    """

    url: str
    filename: str
    sha256: str | None
    converter: Converter
    metadata: dict[str, Any] = field(default_factory=dict)
    how_to_get: str = ""


BUILTIN: dict[str, BuiltinEntry] = {}


def register_builtin(name: str, entry: BuiltinEntry, overwrite: bool = False) -> None:
    """Make ``name`` a built-in entry (fetched and published into the store on first load)."""
    validate_name(name)
    if name in BUILTIN and not overwrite:
        raise ValueError(f"built-in zoo entry {name!r} is already registered (pass overwrite=True to replace it)")
    BUILTIN[name] = entry


def read_weights_only(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers; never a full unpickle."""
    try:
        return load_weights_only(path)
    except (UnsafeCheckpointError, FileNotFoundError) as error:
        raise ZooError(str(error)) from None


def convert_genesis_chest_ct(path: Path) -> tuple[nn.Module, dict[str, Any]]:
    """Official ``Genesis_Chest_CT.pt`` (``{"state_dict": {"module.*": ...}, ...}`` or a bare state dict) to GenesisUNet3D."""
    content = read_weights_only(path)
    state = content.get("state_dict", content) if isinstance(content, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ZooError(f"{path} is not a Models Genesis checkpoint: expected a state dict of tensors")
    network = GenesisUNet3D(**GENESIS_CHEST_CT_METADATA["architecture"]["kwargs"])
    for part, weights in split_official_state_dict(dict(state)).items():
        load_exact(getattr(network, part), weights, f"{path} ({part})")
    return network, copy.deepcopy(GENESIS_CHEST_CT_METADATA)


GENESIS_CHEST_CT_URL = "https://huggingface.co/MrGiovanni/ModelsGenesis/resolve/main/Genesis_Chest_CT.pt"

GENESIS_CHEST_CT_METADATA: dict[str, Any] = {
    "description": "The official Models Genesis Chest CT weights, converted to lightning_ssl's GenesisUNet3D layout.",
    "architecture": {"name": "genesis_unet3d", "kwargs": {"spatial_dims": 3, "in_channels": 1, "out_channels": 1}},
    "method": "genesis",
    "method_config": {
        "flip_rate": 0.4,
        "local_rate": 0.5,
        "nonlinear_rate": 0.9,
        "paint_rate": 0.9,
        "outpaint_rate": 0.8,
        "inpaint_rate": 0.2,
        "loss": "mse",
        "optimizer": "sgd",
        "lr": 1.0,
        "batch_size": 6,
    },
    "data": "LUNA16 (official pretraining)",
    "data_config": {"train_fold": [0, 1, 2, 3, 4], "valid_fold": [5, 6], "cubes_per_patient": 32, "hu_range": [-1000, 1000]},
    "label_budget": "none (self-supervised)",
    "input": {
        "spatial_dims": 3,
        "channels": 1,
        "channel_names": ["CT"],
        "patch_size": [64, 64, 32],
        "axes": "X,Y,Z",
        "intensity": "HU clipped to [-1000, 1000] then scaled to [0, 1]",
    },
    "output_activation": "sigmoid",
    "metrics": {
        "note": "reported by the authors (MICCAI 2019, read off a bar chart, approximate); not reproduced here",
        "ncc_lung_nodule_auc": 98.3,
        "ncs_lung_nodule_iou": 77.6,
        "ecc_pulmonary_embolism_auc": 88.0,
        "bms_brain_tumour_iou": 90.6,
    },
    "licence": (
        "code: MIT (github.com/MrGiovanni/ModelsGenesis/blob/master/LICENSE); weights: distributed by the "
        "authors (Hugging Face Hub MrGiovanni/ModelsGenesis, formerly by request form), see their terms"
    ),
    "citation": (
        "Zhou Z, Sodha V, Pang J, Gotway MB, Liang J. Models Genesis. Medical Image Analysis 67:101840, 2021. "
        "doi:10.1016/j.media.2020.101840; and Zhou Z et al. Models Genesis: Generic Autodidactic Models for 3D "
        "Medical Image Analysis. MICCAI 2019, pp. 384-393. doi:10.1007/978-3-030-32251-9_42"
    ),
}

register_builtin(
    "genesis_chest_ct",
    BuiltinEntry(
        url=GENESIS_CHEST_CT_URL,
        filename="Genesis_Chest_CT.pt",
        sha256=None,
        converter=convert_genesis_chest_ct,
        metadata=GENESIS_CHEST_CT_METADATA,
        how_to_get=(
            "the file is the official PyTorch Genesis_Chest_CT.pt of github.com/MrGiovanni/ModelsGenesis; "
            "or pretrain your own with `make pretrain METHOD=genesis DATA=luna16` and publish it"
        ),
    ),
)
