"""Rebuilding a network from an entry's metadata, and loading weights into it with no key left over."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from lightning_ssl.models import NETWORKS, build_network
from lightning_ssl.zoo.errors import ZooMetadataError
from lightning_ssl.zoo.store import PARTS, architecture_of


def registered_architecture(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`architecture_of` ``metadata``, whose name must be a registered network (looked up, never imported)."""
    architecture = architecture_of(metadata)
    if architecture["name"] not in NETWORKS:
        raise ZooMetadataError(
            f"cannot rebuild architecture {architecture['name']!r}: it is not a registered network (known: "
            f"{', '.join(NETWORKS.names())}); the entry was published by another version of lightning_ssl or its "
            "metadata.json was edited"
        )
    return architecture


def build_from_metadata(metadata: Mapping[str, Any], device: str | torch.device | None = None) -> nn.Module:
    """Build the network described by ``metadata["architecture"]`` (randomly initialised).

    The name is looked up among the registered networks only (never imported), so metadata naming anything else,
    like ``os.system``, is refused with one line (ZooMetadataError).
    """
    architecture = registered_architecture(metadata)
    name = architecture["name"]
    try:
        with torch.device(device or "cpu"):
            network = build_network(name, **architecture["kwargs"])
    except (KeyError, TypeError, ValueError) as error:
        message = error.args[0] if error.args else error
        raise ZooMetadataError(f"cannot rebuild architecture {name!r}: {message}") from None
    if not isinstance(getattr(network, PARTS[0], None), nn.Module):
        raise ZooMetadataError(f"network {name!r} has no .{PARTS[0]} submodule")
    return network


def load_exact(module: nn.Module, state_dict: Mapping[str, torch.Tensor], where: str) -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or misshapen key raises, naming them."""
    own = module.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    misshapen = [
        f"{key}: {tuple(value.shape)} vs {tuple(own[key].shape)} expected"
        for key, value in state_dict.items()
        if key in own and tuple(value.shape) != tuple(own[key].shape)
    ]
    if missing or unexpected or misshapen:
        problems = [
            f"{label} {keys}" for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", misshapen)) if keys
        ]
        raise ValueError(f"weights of {where} do not match the network: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=True)
