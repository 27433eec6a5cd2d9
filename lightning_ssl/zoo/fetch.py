"""Making a built-in entry available: download once (or take the cached file), convert, publish."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lightning_ssl.io.checksum import sha256_file
from lightning_ssl.io.download import DEFAULT_TIMEOUT, download
from lightning_ssl.io.errors import ChecksumError, DownloadError
from lightning_ssl.io.lock import file_lock
from lightning_ssl.zoo.builtin import BUILTIN, BuiltinEntry
from lightning_ssl.zoo.errors import ZooChecksumError, ZooDownloadError, ZooNotFoundError
from lightning_ssl.zoo.publish import publish_network
from lightning_ssl.zoo.store import ENV_VAR, downloads_dir, entry_dir, versions

log = logging.getLogger(__name__)


def fetch_builtin(name: str, store: str | Path | None = None, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Publish built-in ``name`` into the store unless it is there already; return its newest version's directory.

    Safe when several processes call it at once: one fetches, the others wait and reuse its entry.
    """
    if name not in BUILTIN:
        raise ZooNotFoundError(f"{name!r} is not a built-in zoo entry")
    entry = BUILTIN[name]
    cache = downloads_dir(store)
    with file_lock(cache / f"{name}.lock"):
        if versions(name, store):
            return entry_dir(name, None, store)
        path = cache / entry.filename
        digest = _verified_download(name, entry, path, store, timeout)
        network = entry.convert(path)
        source = {**entry.source(), "sha256": digest, "sha256_pinned": entry.sha256 is not None}
        return publish_network(name, network, {**entry.metadata, "source": source}, store)


def recorded_sha256_path(path: Path) -> Path:
    """Where the trust-on-first-use checksum of a cached download is kept."""
    return path.with_name(path.name + ".sha256")


def _verified_download(name: str, entry: BuiltinEntry, path: Path, store: str | Path | None, timeout: float) -> str:
    """sha256 of the cached source file of ``entry``, downloading it if absent; refuses a file that differs."""
    record = recorded_sha256_path(path)
    expected = (entry.sha256 or _read_record(record) or "").lower() or None
    if path.exists():
        got = sha256_file(path)
        if expected is not None and got != expected:
            origin = "pinned by the registry" if entry.sha256 else f"recorded at first download in {record}"
            raise ZooChecksumError(
                f"cached file {path} has sha256 {got}, expected {expected} ({origin}); refusing it: "
                f"delete it to download {entry.url} again"
            )
    else:
        hint = f"or set {ENV_VAR} to a store that already has {name!r}" + (f"; {entry.how_to_get}" if entry.how_to_get else "")
        try:
            download(entry.url, path, expected, what=f"the weights of zoo entry {name!r}", hint=hint, timeout=timeout)
        except DownloadError as error:
            raise ZooDownloadError(str(error)) from None
        except ChecksumError as error:
            raise ZooChecksumError(str(error)) from None
        got = expected or sha256_file(path)
    if expected is None:
        _write_record(record, got, path.name)
        log.warning("no published checksum for %s: trusting this first copy (sha256 %s, kept in %s)", path, got, record)
    return got


def _read_record(record: Path) -> str | None:
    """The checksum kept in ``record`` (``sha256sum`` format), None if there is none."""
    try:
        return record.read_text(encoding="utf-8").split()[0]
    except (FileNotFoundError, IndexError):
        return None


def _write_record(record: Path, digest: str, filename: str) -> None:
    """Keep ``digest`` in ``record`` (atomically)."""
    staging = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    staging.write_text(f"{digest}  {filename}\n", encoding="utf-8")
    os.replace(staging, record)
