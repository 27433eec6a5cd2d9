"""Loading an entry: as a ready module, or onto a user's own module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import safetensors.torch
import torch
from torch import nn

from lightning_ssl.io.checksum import sha256_bytes
from lightning_ssl.zoo.builtin import BUILTIN
from lightning_ssl.zoo.errors import ZooChecksumError, ZooError, ZooMismatchError, ZooNotFoundError
from lightning_ssl.zoo.fetch import fetch_builtin
from lightning_ssl.zoo.hub import hub_entry_dir, is_hub_ref
from lightning_ssl.zoo.matching import match_keys
from lightning_ssl.zoo.network import build_from_metadata, load_exact
from lightning_ssl.zoo.store import (
    ENV_VAR,
    METADATA_FILE,
    PARTS,
    entry_dir,
    names,
    parse_ref,
    part_file,
    read_metadata,
    store_root,
    versions,
)

Part = Literal["encoder", "decoder", "model"]
_CHOICES = (*PARTS, "model")


@dataclass
class LoadReport:
    """Which keys :func:`load_into` loaded (module keys), which module keys the zoo weights lacked, which zoo keys
    the module lacked, the prefixes under which the names matched, and the share of the module's parameters loaded."""

    source: str
    part: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    zoo_prefix: str = ""
    module_prefix: str = ""
    fraction: float = 1.0

    def __str__(self) -> str:
        renamed = (
            f", zoo keys {self.zoo_prefix or '(no prefix)'}* onto module keys {self.module_prefix or '(no prefix)'}*"
            if self.zoo_prefix or self.module_prefix
            else ""
        )
        return (
            f"{self.source} ({self.part}): loaded {len(self.loaded)} keys ({self.fraction:.0%} of the module's parameters"
            f"{renamed}), {len(self.missing)} missing {self.missing}, {len(self.unexpected)} unexpected {self.unexpected}"
        )


def resolve(ref: str, store: str | Path | None = None) -> Path:
    """Directory of ``name`` or ``name@v<k>``, fetching a built-in entry that is not in the store yet; of
    ``hf://USER/REPO[@REVISION]`` in the Hugging Face cache, downloading it if needed."""
    if is_hub_ref(ref):
        return hub_entry_dir(ref)
    name, version = parse_ref(ref)
    if not versions(name, store) and name in BUILTIN:
        fetch_builtin(name, store)
    if not versions(name, store):
        known = ", ".join(sorted(set(names(store)) | set(BUILTIN))) or "none"
        raise ZooNotFoundError(
            f"zoo entry {name!r} is not in the store {store_root(store)} and is not built in (known: {known}); "
            f"publish it with zoo.publish(CHECKPOINT, {name!r}) or `zoo publish CHECKPOINT {name}`, "
            f"or set {ENV_VAR} to a store that has it"
        )
    return entry_dir(name, version, store)


def metadata(ref: str, store: str | Path | None = None) -> dict[str, Any]:
    """The metadata of entry ``name``, ``name@v<k>`` or ``hf://USER/REPO[@REVISION]`` (architecture, input contract, method, metrics, ...)."""
    return read_metadata(resolve(ref, store))


def read_weights(directory: Path, metadata: dict[str, Any], part: str) -> dict[str, torch.Tensor]:
    """The tensors of one part of the entry in ``directory``, after checking their sha256."""
    path = directory / part_file(part)
    expected = (metadata.get("files") or {}).get(part, {}).get("sha256")
    if not expected:
        raise ZooChecksumError(f"{path}: metadata.json records no sha256 for it; refusing to load it")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ZooError(f"zoo entry at {directory} is incomplete: {path.name} is missing") from None
    got = sha256_bytes(data)
    if got != expected:
        raise ZooChecksumError(
            f"{path}: sha256 {got} does not match the {expected} that {METADATA_FILE} records; refusing to load it "
            f"(delete {directory} and publish or download it again)"
        )
    return safetensors.torch.load(data)


def load(name: str, part: Part = "encoder", device: str | torch.device = "cpu", store: str | Path | None = None) -> nn.Module:
    """The ``encoder``, ``decoder`` or whole ``model`` of entry ``name`` (``name@v<k>``, or ``hf://USER/REPO[@REVISION]``
    from the Hugging Face Hub), weights in (their sha256 checked against metadata.json), eval mode, on ``device``."""
    _check_part(part)
    directory = resolve(name, store)
    metadata = read_metadata(directory)
    network = build_from_metadata(metadata)
    for each in _parts_of(part, metadata, directory):
        load_exact(getattr(network, each), read_weights(directory, metadata, each), f"{directory} ({each})")
    module = network if part == "model" else getattr(network, part)
    return module.to(device).eval()


def load_into(
    module: nn.Module,
    name: str,
    part: Part = "encoder",
    store: str | Path | None = None,
    strict: bool = True,
    min_loaded: float = 0.9,
) -> LoadReport:
    """Copy the weights of entry ``name`` (one part, or ``model`` = ``encoder.*`` + ``decoder.*``) onto ``module``.

    Keys are matched by name under the common prefixes that pair the most names (e.g. the zoo's ``resnet.layer1.*``
    onto MONAI's ``layer1.*``, or the zoo's ``levels.*`` onto a user's ``backbone.levels.*``). Raises ZooMismatchError
    (a ValueError), loading nothing, when a matched name has another shape; when the matched keys hold fewer than
    ``min_loaded`` of the module's parameter values; or, with ``strict`` (as in torch), when any module key is
    missing from the zoo weights or any zoo key has no place in the module. Otherwise loads the matched keys.
    """
    _check_part(part)
    directory = resolve(name, store)
    metadata = read_metadata(directory)
    weights: dict[str, torch.Tensor] = {}
    for each in _parts_of(part, metadata, directory):
        prefix = f"{each}." if part == "model" else ""
        weights.update({prefix + key: value for key, value in read_weights(directory, metadata, each).items()})
    source = name if is_hub_ref(name) else f"{metadata.get('name', directory.parent.name)}@v{metadata.get('version', directory.name[1:])}"
    own = module.state_dict()
    match = match_keys(weights, own)
    if match.misshapen:
        shapes = [f"{key}: zoo {tuple(weights[zoo].shape)} vs module {tuple(own[key].shape)}" for key, zoo in match.misshapen.items()]
        raise ZooMismatchError(f"{source} ({part}) does not fit the module, shapes differ for {len(shapes)} keys: {'; '.join(shapes)}")
    used = set(match.pairs.values())
    report = LoadReport(
        source=source,
        part=part,
        loaded=list(match.pairs),
        missing=[key for key in own if key not in match.pairs],
        unexpected=[key for key in weights if key not in used],
        zoo_prefix=match.zoo_prefix,
        module_prefix=match.module_prefix,
        fraction=_parameter_share(module, match.pairs),
    )
    if report.fraction < min_loaded:
        raise ZooMismatchError(
            f"{source} ({part}) fits only {report.fraction:.0%} of the module's parameters ({len(report.loaded)} of "
            f"{len(own)} keys matched by name and shape, fewer than min_loaded={min_loaded:g}; module keys such as "
            f"{report.missing[:3]} have no counterpart among zoo keys such as {report.unexpected[:3]}): it was built "
            f"for another network (the entry's is {metadata.get('architecture', {}).get('name')!r}); "
            f"pass min_loaded=0 to load the matched keys anyway"
        )
    if strict and (report.missing or report.unexpected):
        raise ZooMismatchError(
            f"{source} ({part}) does not match the module: missing in the zoo weights {report.missing}, "
            f"not in the module {report.unexpected}; pass strict=False to load the {len(report.loaded)} matching keys"
        )
    module.load_state_dict({key: weights[zoo] for key, zoo in match.pairs.items()}, strict=False)
    return report


def _parameter_share(module: nn.Module, loaded: Mapping[str, str]) -> float:
    """Share of ``module``'s parameter values (not buffers) whose keys are in ``loaded``; 1 for a module without any."""
    sizes = {key: parameter.numel() for key, parameter in module.named_parameters()}
    total = sum(sizes.values())
    return sum(size for key, size in sizes.items() if key in loaded) / total if total else 1.0


def _parts_of(part: str, metadata: dict[str, Any], directory: Path) -> tuple[str, ...]:
    """The weight parts that ``part`` needs; raises ZooError when the entry did not publish one of them."""
    wanted = PARTS if part == "model" else (part,)
    published = tuple(metadata.get("files") or {})
    absent = [each for each in wanted if each not in published]
    if absent:
        method = metadata.get("method") or "an unrecorded method"
        raise ZooError(
            f"zoo entry at {directory} has no {' or '.join(absent)}: it was pretrained with {method}, which trains "
            f"only {' and '.join(published) or 'nothing'}; load part={published[0] if published else 'encoder'!r} instead"
        )
    return wanted


def _check_part(part: str) -> None:
    """Raise ValueError unless ``part`` is encoder, decoder or model."""
    if part not in _CHOICES:
        raise ValueError(f"part must be one of {', '.join(_CHOICES)}, got {part!r}")
