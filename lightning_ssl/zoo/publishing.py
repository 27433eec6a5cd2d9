"""Writing a new version of an entry, from a network or from a Lightning checkpoint."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata as distributions
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from lightning_ssl.io.checkpoint import load_lightning_checkpoint
from lightning_ssl.io.checksum import sha256_bytes
from lightning_ssl.zoo.network import build_from_metadata, load_exact
from lightning_ssl.zoo.store import METADATA_FILE, PARTS, architecture_of, part_file, store_root, validate_name, versions

log = logging.getLogger(__name__)

RESERVED_KEYS = ("name", "version", "created", "files", "versions")
CHECKPOINT_PREFIX = "network."
CHECKPOINT_METADATA_KEY = "zoo_metadata"
STAGING_PREFIX = ".tmp-"
STALE_AFTER = 24 * 3600.0  # seconds before a staging folder whose owner cannot be checked counts as abandoned
_STAGING = re.compile(r"\.tmp-(?P<host>[A-Za-z0-9._]+)-(?P<pid>[0-9]+)-[a-z0-9_]+")


def publish_network(
    name: str,
    network: nn.Module,
    metadata: Mapping[str, Any],
    store: str | Path | None = None,
    parts: Sequence[str] | None = None,
) -> Path:
    """Publish ``network.encoder`` (and ``network.decoder``) as the next version of ``name``; return its directory.

    ``parts`` defaults to every part the network has; an encoder-only entry (e.g. from SimCLR, whose
    decoder is never trained) passes ``parts=["encoder"]``.

    ``metadata`` must hold ``architecture = {"name", "kwargs"}`` that rebuilds ``network`` through
    ``lightning_ssl.models.build_network``; it may hold method, method_config, data, data_config,
    label_budget, input, metrics, licence, citation, output_activation and any other JSON values.
    The zoo sets name, version, created, files (sha256 and size of each weight file) and versions
    (of the software). The write is atomic: the version appears complete or not at all.
    """
    validate_name(name)
    given = _jsonable(dict(metadata), "metadata")
    given["architecture"] = architecture_of(given)
    parts = _checked_parts(network, parts)
    tensors = {part: _part_tensors(network, part) for part in parts}
    _check_rebuilds(given, tensors)
    blobs = {part: safetensors.torch.save(tensors[part], metadata={"name": name, "part": part}) for part in parts}
    record = {
        "name": name,
        "version": None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **{key: value for key, value in given.items() if key not in RESERVED_KEYS},
        "files": {part: {"sha256": sha256_bytes(blob), "bytes": len(blob)} for part, blob in blobs.items()},
        "versions": _software_versions(),
    }
    return _commit(name, blobs, record, store)


def publish(checkpoint: str | Path, name: str, store: str | Path | None = None) -> Path:
    """Publish the network of a Lightning checkpoint as the next version of ``name``; return its directory.

    Contract with the checkpoint:
    - ``checkpoint["hyper_parameters"]["zoo_metadata"]`` is the metadata dict of
      :func:`publish_network` (at least ``architecture = {"name", "kwargs"}``);
    - ``checkpoint["state_dict"]`` holds the network under the prefix ``network.``, i.e. keys
      ``network.encoder.*`` and, when the method trains one, ``network.decoder.*`` (other keys, e.g.
      heads, are ignored). The parts found are the parts published.

    The file is read with ``torch.load(weights_only=True)`` only: a checkpoint holding other objects is refused
    (see ``lightning_ssl.io.checkpoint``), so publishing never runs code from it.
    """
    validate_name(name)
    path = Path(checkpoint)
    content = load_lightning_checkpoint(path)
    metadata = _checkpoint_metadata(content, path)
    network = build_from_metadata(metadata)
    state = content["state_dict"]
    parts = []
    for part in PARTS:
        prefix = f"{CHECKPOINT_PREFIX}{part}."
        weights = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
        if weights:
            load_exact(getattr(network, part), weights, f"{path} ({part})")
            parts.append(part)
    if PARTS[0] not in parts:
        raise ValueError(f"checkpoint {path} has no {CHECKPOINT_PREFIX}{PARTS[0]}.* weights in its state_dict")
    return publish_network(name, network, metadata, store, parts)


def _checkpoint_metadata(content: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """``hyper_parameters["zoo_metadata"]`` of a checkpoint as plain JSON values."""
    hyper_parameters = content.get("hyper_parameters")
    if not isinstance(hyper_parameters, Mapping) or CHECKPOINT_METADATA_KEY not in hyper_parameters:
        raise ValueError(
            f"checkpoint {path} has no hyper_parameters[{CHECKPOINT_METADATA_KEY!r}] "
            "(the LightningModule must save the zoo metadata with save_hyperparameters)"
        )
    metadata = _jsonable(hyper_parameters[CHECKPOINT_METADATA_KEY], CHECKPOINT_METADATA_KEY)
    if not isinstance(metadata, dict):
        raise ValueError(f"checkpoint {path}: hyper_parameters[{CHECKPOINT_METADATA_KEY!r}] is not a dict")
    return metadata


def _checked_parts(network: nn.Module, parts: Sequence[str] | None) -> list[str]:
    """The parts to publish: those asked for, or every part the network has; the encoder is always one."""
    chosen = [part for part in PARTS if isinstance(getattr(network, part, None), nn.Module)] if parts is None else list(parts)
    unknown = [part for part in chosen if part not in PARTS]
    if unknown or PARTS[0] not in chosen:
        raise ValueError(f"parts {chosen} must include {PARTS[0]!r} and be among {list(PARTS)}")
    return [part for part in PARTS if part in chosen]


def _part_tensors(network: nn.Module, part: str) -> dict[str, torch.Tensor]:
    """The state of ``network.<part>`` as contiguous CPU tensors that share no memory."""
    module = getattr(network, part, None)
    if not isinstance(module, nn.Module):
        raise ValueError(f"the network to publish has no .{part} submodule")
    return {key: value.detach().to("cpu", copy=True).contiguous() for key, value in module.state_dict().items()}


def _check_rebuilds(metadata: Mapping[str, Any], tensors: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Raise ValueError unless ``metadata["architecture"]`` rebuilds a network with exactly these weights."""
    rebuilt = build_from_metadata(metadata, device="meta")
    for part in tensors:
        own = {key: tuple(value.shape) for key, value in getattr(rebuilt, part).state_dict().items()}
        given = {key: tuple(value.shape) for key, value in tensors[part].items()}
        if own != given:
            differences = sorted(key for key in own.keys() | given.keys() if own.get(key) != given.get(key))
            detail = ", ".join(f"{key}: {given.get(key)} vs rebuilt {own.get(key)}" for key in differences[:10])
            raise ValueError(
                f"metadata['architecture'] {metadata['architecture']} does not rebuild the published network "
                f"({part}, {len(differences)} keys differ: {detail})"
            )


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types (mappings, sequences, tensors and paths are converted)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (Sequence, set, frozenset)) and not isinstance(value, (bytes, bytearray)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(item, f"{where}[{index}]") for index, item in enumerate(items)]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist(), where)
    raise TypeError(f"{where} = {value!r} ({type(value).__name__}) cannot be stored as JSON")


def _software_versions() -> dict[str, str | None]:
    """Versions of the software that wrote an entry."""
    return {
        "lightning_ssl": distribution_version("lightning-ssl"),
        "torch": torch.__version__,
        "pytorch_lightning": distribution_version("pytorch-lightning") or distribution_version("lightning"),
        "safetensors": getattr(safetensors, "__version__", None) or distribution_version("safetensors"),
        "python": platform.python_version(),
    }


def distribution_version(distribution: str) -> str | None:
    """Installed version of a distribution, None if absent."""
    try:
        return distributions.version(distribution)
    except distributions.PackageNotFoundError:
        return None


def _commit(name: str, blobs: Mapping[str, bytes], record: dict[str, Any], store: str | Path | None) -> Path:
    """Write the entry into a temporary directory, then rename it to the next free ``v<k>``."""
    parent = store_root(store) / name
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(parent)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{_host()}-{os.getpid()}-", dir=parent))
    try:
        os.chmod(staging, 0o755)
        for part, blob in blobs.items():
            _write_durably(staging / part_file(part), blob)
        while True:
            version = max(versions(name, store), default=0) + 1
            record["version"] = version
            _write_durably(staging / METADATA_FILE, json.dumps(record, indent=2).encode("utf-8"))
            target = parent / f"v{version}"
            try:
                os.rename(staging, target)
            except OSError:
                if target.exists():
                    log.info("%s@v%d was published concurrently; trying the next version", name, version)
                    continue
                raise
            _sync_directory(parent)
            log.info("published %s@v%d at %s", name, version, target)
            return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(parent: Path) -> None:
    """Delete the staging folders in ``parent`` that killed publishes left behind: those of a process of this machine
    that no longer runs, and any other (another machine's, an older version's) untouched for ``STALE_AFTER`` seconds.
    A publish still in progress keeps its folder."""
    for child in parent.iterdir():
        if child.is_dir() and child.name.startswith(STAGING_PREFIX) and _abandoned(child):
            log.info("removing %s, left by a publish that did not finish", child)
            shutil.rmtree(child, ignore_errors=True)


def _abandoned(staging: Path) -> bool:
    """Whether no running publish owns the staging folder ``staging``."""
    match = _STAGING.fullmatch(staging.name)
    if match and match["host"] == _host() and os.name == "posix":
        return not _running(int(match["pid"]))
    try:
        return time.time() - staging.stat().st_mtime > STALE_AFTER
    except FileNotFoundError:
        return False


def _running(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (POSIX)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _host() -> str:
    """This machine's name, as it may appear in a folder name."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "localhost"


def _write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to disk."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_directory(path: Path) -> None:
    """Flush a directory's entries to disk where the platform allows it."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
