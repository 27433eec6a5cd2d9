"""Exporting an entry for other tools: a MONAI bundle (``monai.bundle`` loads and runs it) or an ONNX encoder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightning_ssl.errors import one_line
from lightning_ssl.models import has_decoder
from lightning_ssl.models.genesis_unet import BatchStatsNorm3d
from lightning_ssl.zoo.errors import ZooError
from lightning_ssl.zoo.loading import load
from lightning_ssl.zoo.loading import metadata as entry_metadata
from lightning_ssl.zoo.network import registered_architecture
from lightning_ssl.zoo.publishing import distribution_version
from lightning_ssl.zoo.store import PARTS

FORMATS = ("monai-bundle", "onnx")
ONNX_FILE = "encoder.onnx"
ONNX_OPSET = 18
_FALLBACK_SIZE = 32  # a side every registered network divides down cleanly when the entry records no patch size


def export(ref: str, fmt: str, directory: str | Path, store: str | Path | None = None) -> Path:
    """Write entry ``ref`` to ``directory`` as ``monai-bundle`` or ``onnx``; the bundle's folder or the ONNX file."""
    if fmt == "monai-bundle":
        return export_monai_bundle(ref, directory, store)
    if fmt == "onnx":
        return export_onnx(ref, directory, store)
    raise ZooError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")


def export_monai_bundle(ref: str, directory: str | Path, store: str | Path | None = None) -> Path:
    """A MONAI bundle of entry ``ref`` in ``directory``: ``configs/metadata.json`` (with the input contract),
    ``configs/inference.json`` (the network and the code that loads its weights) and ``models/model.pt``.

    The bundle holds the whole network when it has a decoder that the entry published, else the encoder. Running it
    needs lightning_ssl installed (its networks are lightning_ssl's).
    """
    info = entry_metadata(ref, store)
    whole = _whole(info)
    network = load(ref, part="model" if whole else "encoder", store=store)
    root = _empty_folder(directory)
    (root / "configs").mkdir()
    (root / "models").mkdir()
    torch.save(network.state_dict(), root / "models" / "model.pt")
    _write_json(root / "configs" / "inference.json", _inference_config(info, whole))
    _write_json(root / "configs" / "metadata.json", _bundle_metadata(ref, info, network, whole))
    return root


def export_onnx(ref: str, directory: str | Path, store: str | Path | None = None) -> Path:
    """``directory/encoder.onnx``: the encoder of entry ``ref`` taking ``image`` (batch, channels, *spatial) and
    returning one output per feature map, finest first (batch size free; spatial size as exported, from the input
    contract's patch size). Needs the ``export`` extra (``pip install lightning-ssl[export]``). The U-Net and ResNet
    encoders export; the Models Genesis encoder does not (see the error it raises)."""
    try:
        import onnx
    except ImportError:
        raise ZooError("ONNX export needs the onnx package: pip install 'lightning-ssl[export]'") from None
    info = entry_metadata(ref, store)
    encoder = load(ref, part="encoder", store=store)
    if any(isinstance(layer, BatchStatsNorm3d) for layer in encoder.modules()):
        raise ZooError(
            f"cannot export the encoder of {ref!r} to ONNX: it normalises with each batch's statistics at inference "
            "(as Models Genesis does), which torch's ONNX exporter silently drops; export it as a MONAI bundle instead"
        )
    example = torch.rand(1, *_input_shape(info))
    with torch.no_grad():
        outputs = encoder(example)
    names = [f"features_{level}" for level in range(len(outputs))]
    path = _empty_folder(directory) / ONNX_FILE
    try:
        program = torch.onnx.export(
            encoder,
            (example,),
            input_names=["image"],
            output_names=names,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
        program.save(str(path))
    except Exception as error:  # the exporter's failures have many types; each means this network does not export
        raise ZooError(f"cannot export the encoder of {ref!r} to ONNX: {one_line(error)[:300]}") from None
    model = onnx.load(str(path))
    model.doc_string = f"encoder of lightning_ssl zoo entry {ref}; input contract: {json.dumps(info.get('input') or {})}"
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def _whole(info: Mapping[str, Any]) -> bool:
    """Whether the bundle holds the whole network: it has a decoder and the entry published it."""
    return has_decoder(registered_architecture(info)["name"]) and all(part in (info.get("files") or {}) for part in PARTS)


def _inference_config(info: Mapping[str, Any], whole: bool) -> dict[str, Any]:
    """``configs/inference.json``: the network, on the device, with the bundle's weights loaded at initialisation."""
    architecture = info["architecture"]
    build = {"_target_": "lightning_ssl.models.build_network", "name": architecture["name"], **architecture.get("kwargs", {})}
    config: dict[str, Any] = {
        "imports": ["$import torch", "$import lightning_ssl.models"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": build if whole else "$@architecture.encoder",
        "network": "$@network_def.to(@device)",
        "checkpoint": "$@bundle_root + '/models/model.pt'",
        "initialize": [
            "$@network.load_state_dict(torch.load(@checkpoint, map_location=@device, weights_only=True))",
            "$@network.eval()",
        ],
    }
    if not whole:
        config = {"architecture": build, **config}
    patch = (info.get("input") or {}).get("patch_size")
    if whole and patch:
        config["inferer"] = {"_target_": "SlidingWindowInferer", "roi_size": list(patch), "sw_batch_size": 1, "overlap": 0.25}
    return config


def _bundle_metadata(ref: str, info: Mapping[str, Any], network: nn.Module, whole: bool) -> dict[str, Any]:
    """``configs/metadata.json``: versions, description, licence, citation and the network's data format."""
    contract = dict(info.get("input") or {})
    channels = int(contract.get("channels") or info["architecture"]["kwargs"].get("in_channels", 1))
    spatial = contract.get("patch_size") or [f"{_divisor(network)}*n"] * int(contract.get("spatial_dims", 2))
    image = {
        "type": "image",
        "format": "magnitude",
        "modality": ", ".join(contract.get("channel_names") or []) or "unrecorded",
        "num_channels": channels,
        "spatial_shape": list(spatial),
        "dtype": "float32",
        "value_range": [],
        "is_patch_data": bool(contract.get("patch_size")),
        "channel_def": {str(index): name for index, name in enumerate(contract.get("channel_names") or [])},
    }
    version = info.get("version") or 1
    what = "whole network (encoder and decoder)" if whole else "encoder (returns a list of feature maps, finest first)"
    outputs = {"pred": _prediction(info, spatial)} if whole else {}
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": f"{version}.0.0",
        "changelog": {f"{version}.0.0": f"exported from lightning_ssl zoo entry {ref}"},
        "monai_version": distribution_version("monai"),
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"lightning-ssl": distribution_version("lightning-ssl") or "any"},
        "name": str(info.get("name") or ref),
        "task": f"self-supervised pretrained {what}",
        "description": f"{info.get('description') or ''} Exported from lightning_ssl zoo entry {ref}: the {what}. "
        f"Input: {contract.get('intensity') or 'intensity scaling not recorded'}.".strip(),
        "authors": "lightning_ssl zoo",
        "copyright": str(info.get("licence") or "not recorded"),
        "references": [str(info["citation"])] if info.get("citation") else [],
        "network_data_format": {"inputs": {"image": image}, "outputs": outputs},
        "lightning_ssl": {"entry": ref, "method": info.get("method"), "data": info.get("data"), "input": contract},
    }


def _prediction(info: Mapping[str, Any], spatial: list[Any]) -> dict[str, Any]:
    """The data format of the whole network's output."""
    return {
        "type": "image",
        "format": "logits",
        "num_channels": int(info["architecture"]["kwargs"].get("out_channels", 1)),
        "spatial_shape": list(spatial),
        "dtype": "float32",
        "value_range": [],
        "is_patch_data": bool((info.get("input") or {}).get("patch_size")),
        "channel_def": {},
        "activation": info.get("output_activation") or "not recorded",
    }


def _input_shape(info: Mapping[str, Any]) -> tuple[int, ...]:
    """(channels, *spatial) of one input: the contract's patch size, else a size every network accepts."""
    contract = info.get("input") or {}
    kwargs = info["architecture"].get("kwargs", {})
    channels = int(contract.get("channels") or kwargs.get("in_channels", 1))
    dims = int(contract.get("spatial_dims") or kwargs.get("spatial_dims", 2))
    return (channels, *(contract.get("patch_size") or [_FALLBACK_SIZE] * dims))


def _divisor(network: nn.Module) -> int:
    """What each side of the input must be a multiple of."""
    return int(getattr(getattr(network, "encoder", network), "downsampling_factor", 1))


def _empty_folder(directory: str | Path) -> Path:
    """``directory``, created; ZooError when it holds files already."""
    root = Path(directory).expanduser()
    if root.exists() and any(root.iterdir()):
        raise ZooError(f"export folder {root} is not empty: choose a new folder")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    """``content`` as indented JSON."""
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
