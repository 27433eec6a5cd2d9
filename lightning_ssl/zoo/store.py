"""Where entries live: ``<root>/<name>/v<k>/{encoder,decoder}.safetensors`` and ``metadata.json``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning_ssl.zoo.errors import ZooError, ZooMetadataError, ZooNotFoundError

ENV_VAR = "LIGHTNING_SSL_ZOO"
DEFAULT_ROOT = Path("~/.cache/lightning_ssl/zoo")
DOWNLOADS_DIR = "_downloads"
METADATA_FILE = "metadata.json"
PARTS = ("encoder", "decoder")

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_VERSION_DIR = re.compile(r"v([1-9][0-9]*)")
_REF = re.compile(r"(?P<name>[^@]+)(?:@v(?P<version>[1-9][0-9]*))?")


def store_root(store: str | Path | None = None) -> Path:
    """The store's root: ``store`` if given, else ``$LIGHTNING_SSL_ZOO``, else ``~/.cache/lightning_ssl/zoo``."""
    if store is None:
        store = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(store).expanduser()


def downloads_dir(store: str | Path | None = None) -> Path:
    """Where downloaded source files (e.g. official checkpoints) are cached."""
    return store_root(store) / DOWNLOADS_DIR


def part_file(part: str) -> str:
    """File name of a weight part inside an entry."""
    return f"{part}.safetensors"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid entry name (lowercase letters, digits, ``_``, ``-``), else raise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid zoo name {name!r}: use lowercase letters, digits, '_' and '-', starting with a letter or digit"
        )
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``name`` or ``name@v<k>`` into the name and the version (None = newest)."""
    match = _REF.fullmatch(ref) if isinstance(ref, str) else None
    if match is None:
        raise ValueError(f"invalid zoo reference {ref!r}: expected NAME or NAME@v<k> (k = 1, 2, ...)")
    version = match.group("version")
    return validate_name(match.group("name")), int(version) if version else None


def versions(name: str, store: str | Path | None = None) -> list[int]:
    """Published versions of ``name``, ascending (empty if none)."""
    directory = store_root(store) / validate_name(name)
    if not directory.is_dir():
        return []
    found = (_VERSION_DIR.fullmatch(child.name) for child in directory.iterdir() if child.is_dir())
    return sorted(int(match.group(1)) for match in found if match)


def names(store: str | Path | None = None) -> list[str]:
    """Names that have at least one published version, sorted."""
    root = store_root(store)
    if not root.is_dir():
        return []
    return sorted(child.name for child in root.iterdir() if _NAME.fullmatch(child.name) and versions(child.name, store))


def entry_dir(name: str, version: int | None = None, store: str | Path | None = None) -> Path:
    """Directory of ``name`` at ``version`` (newest if None); raises ZooNotFoundError if absent."""
    available = versions(name, store)
    if not available:
        raise ZooNotFoundError(f"zoo entry {name!r} is not in the store {store_root(store)}")
    if version is None:
        version = available[-1]
    elif version not in available:
        listed = ", ".join(f"v{v}" for v in available)
        raise ZooNotFoundError(f"zoo entry {name}@v{version} does not exist in {store_root(store)} (has {listed})")
    return store_root(store) / name / f"v{version}"


def read_metadata(directory: Path) -> dict[str, Any]:
    """The metadata of the entry in ``directory``."""
    path = directory / METADATA_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooError(f"zoo entry at {directory} is incomplete: {METADATA_FILE} is missing") from None
    except json.JSONDecodeError as error:
        raise ZooError(f"zoo entry at {directory} has an unreadable {METADATA_FILE}: {error}") from None


def architecture_of(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The ``architecture`` of ``metadata`` as ``{"name": str, "kwargs": dict}``; ZooMetadataError if malformed."""
    architecture = metadata.get("architecture")
    if not isinstance(architecture, Mapping) or not isinstance(architecture.get("name"), str):
        raise ZooMetadataError('metadata needs "architecture": {"name": <registered network>, "kwargs": {...}}')
    kwargs = architecture.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ZooMetadataError(f'metadata["architecture"]["kwargs"] must be a dict, got {type(kwargs).__name__}')
    return {**architecture, "name": architecture["name"], "kwargs": dict(kwargs)}
