"""What the zoo holds: entries in the store and built-in names not fetched yet."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning_ssl.zoo.builtin import BUILTIN
from lightning_ssl.zoo.errors import ZooError
from lightning_ssl.zoo.hub import hub_entry_dir, is_hub_ref
from lightning_ssl.zoo.store import entry_dir, names, parse_ref, read_metadata, versions

log = logging.getLogger(__name__)


def list_entries(store: str | Path | None = None, include_builtin: bool = False) -> list[dict[str, Any]]:
    """One dict per name in the store (name, newest version, method, data, architecture, created, source), by name.

    With ``include_builtin``, built-in names not fetched yet are listed too, with version and created None.
    """
    rows: dict[str, dict[str, Any]] = {}
    for name in names(store):
        try:
            metadata = read_metadata(entry_dir(name, None, store))
        except ZooError as error:
            log.warning("skipping %s: %s", name, error)
            continue
        rows[name] = _row(name, metadata, metadata.get("version"), "store")
    if include_builtin:
        for name, entry in BUILTIN.items():
            if name not in rows:
                rows[name] = _row(name, entry.metadata, None, "builtin (fetched on first load)")
    return [rows[name] for name in sorted(rows)]


def entry_metadata(ref: str, store: str | Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """Metadata of ``name`` / ``name@v<k>`` / ``hf://USER/REPO`` and its directory; a built-in not fetched yet gives its
    card's metadata and None."""
    if is_hub_ref(ref):
        directory = hub_entry_dir(ref)
        return read_metadata(directory), directory
    name, version = parse_ref(ref)
    if name in BUILTIN and version is None and not versions(name, store):
        entry = BUILTIN[name]
        return {"name": name, **entry.metadata, "source": entry.source()}, None
    directory = entry_dir(name, version, store)
    return read_metadata(directory), directory


def _row(name: str, metadata: dict[str, Any], version: int | None, source: str) -> dict[str, Any]:
    """The summary of one entry."""
    return {
        "name": name,
        "version": version,
        "method": metadata.get("method"),
        "data": metadata.get("data"),
        "architecture": (metadata.get("architecture") or {}).get("name"),
        "created": metadata.get("created"),
        "source": source,
    }
