"""Making a built-in entry available: take the cached file or download it (or import a copy from elsewhere),
check it, convert it, publish it.

A file's checksum is trusted only once the file has converted: an error page saved in place of the weights never
becomes the reference that the official file is then measured against.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from torch import nn

from lightning_ssl.errors import one_line
from lightning_ssl.io.checksum import sha256_file
from lightning_ssl.io.download import DEFAULT_TIMEOUT, download
from lightning_ssl.io.errors import DownloadError
from lightning_ssl.io.hub import download_hub_file
from lightning_ssl.io.lock import file_lock
from lightning_ssl.zoo.builtin import BUILTIN, BuiltinEntry
from lightning_ssl.zoo.errors import ZooChecksumError, ZooDownloadError, ZooError, ZooNotFoundError
from lightning_ssl.zoo.publishing import publish_network
from lightning_ssl.zoo.store import ENV_VAR, downloads_dir, entry_dir, versions

log = logging.getLogger(__name__)

IMPORT_COMMAND = "python -m lightning_ssl zoo import-builtin"


def fetch_builtin(name: str, store: str | Path | None = None, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Publish built-in ``name`` into the store unless it is there already; return its newest version's directory.

    Uses the file in the store's ``_downloads`` folder when there is one, else downloads it. Safe when several
    processes call it at once: one fetches, the others wait and reuse its entry.
    """
    entry = _builtin(name)
    cached = downloads_dir(store) / entry.filename
    with file_lock(_lock_path(name, store)):
        if versions(name, store):
            return entry_dir(name, None, store)
        if cached.exists():
            return _install(name, entry, cached, store, downloaded=False)
        if entry.hub is not None:
            return _install(name, entry, _download_from_hub(name, entry, cached, timeout), store, downloaded=False)
        return _install(name, entry, _download(name, entry, cached, timeout), store, downloaded=True)


def import_builtin(name: str, path: str | Path, store: str | Path | None = None) -> Path:
    """Install the official file of built-in ``name`` downloaded elsewhere (e.g. for a machine with no internet).

    The file passes the same checks as a download (the card's or the recorded sha256, then the conversion), is
    copied into the store's ``_downloads`` folder and published unless the store has the entry already; returns the
    entry's newest version's directory.
    """
    entry = _builtin(name)
    source = Path(path).expanduser()
    if not source.is_file():
        raise ZooError(f"cannot import {source} as {name!r}: no such file")
    cached = downloads_dir(store) / entry.filename
    with file_lock(_lock_path(name, store)):
        if versions(name, store):
            _check(name, entry, source, recorded_sha256_path(cached), downloaded=False)
            log.info("%s is already in the store; %s matches it, nothing to import", name, source)
            return entry_dir(name, None, store)
        directory = _install(name, entry, source, store, downloaded=False)
        if not cached.exists() or not os.path.samefile(source, cached):
            _copy_atomically(source, cached)
        return directory


def recorded_sha256_path(path: Path) -> Path:
    """Where the trust-on-first-use checksum of a cached source file is kept (``sha256sum`` format)."""
    return path.with_name(path.name + ".sha256")


def _builtin(name: str) -> BuiltinEntry:
    """The built-in entry ``name``; ZooNotFoundError naming the known ones."""
    if name not in BUILTIN:
        raise ZooNotFoundError(f"{name!r} is not a built-in zoo entry (built in: {', '.join(sorted(BUILTIN)) or 'none'})")
    return BUILTIN[name]


def _lock_path(name: str, store: str | Path | None) -> Path:
    """The lock that serialises fetching and importing ``name`` into one store."""
    return downloads_dir(store) / f"{name}.lock"


def _download(name: str, entry: BuiltinEntry, cached: Path, timeout: float) -> Path:
    """Download the source file of ``entry`` to ``cached``; ZooDownloadError says how to get it otherwise."""
    try:
        return download(entry.url, cached, what=f"the weights of zoo entry {name!r}", hint=_elsewhere(name, entry), timeout=timeout)
    except DownloadError as error:
        raise ZooDownloadError(str(error)) from None


def _download_from_hub(name: str, entry: BuiltinEntry, cached: Path, timeout: float) -> Path:
    """The source file of ``entry`` in the Hugging Face cache, downloaded if needed; ZooDownloadError says where to
    put the file by hand otherwise."""
    hint = f"download {entry.url} by hand and put it at {cached}, " + _elsewhere(name, entry)
    try:
        return download_hub_file(entry.hub, what=f"the weights of zoo entry {name!r}", hint=hint, timeout=timeout)
    except DownloadError as error:
        raise ZooDownloadError(str(error)) from None


def _elsewhere(name: str, entry: BuiltinEntry) -> str:
    """How else to get the file of ``entry``."""
    return (
        f"or install a copy from another machine with `{IMPORT_COMMAND} {name} FILE`, "
        f"or set {ENV_VAR} to a store that already has {name!r}" + (f"; {entry.how_to_get}" if entry.how_to_get else "")
    )


def _install(name: str, entry: BuiltinEntry, path: Path, store: str | Path | None, downloaded: bool) -> Path:
    """Check and convert the source file at ``path``, record its checksum if none is pinned, publish the network."""
    record = recorded_sha256_path(downloads_dir(store) / entry.filename)
    digest, network = _check(name, entry, path, record, downloaded)
    if entry.sha256 is None and _read_record(record) is None:
        _write_record(record, digest, entry.filename)
        log.warning("no published checksum for %s: trusting this file, which converts (sha256 %s, kept in %s)", name, digest, record)
    source = {**entry.source(), "sha256": digest, "sha256_pinned": entry.sha256 is not None}
    return publish_network(name, network, {**entry.metadata, "source": source}, store)


def _check(name: str, entry: BuiltinEntry, path: Path, record: Path, downloaded: bool) -> tuple[str, nn.Module]:
    """sha256 of ``path`` and its converted network; refuses a file whose checksum differs from the pinned or
    ``record``ed one, or that does not convert (a ``downloaded`` file is deleted then)."""
    expected = (entry.sha256 or _read_record(record) or "").lower() or None
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        if downloaded:
            path.unlink(missing_ok=True)
        raise ZooChecksumError(_mismatch(name, entry, path, digest, expected, record, downloaded))
    try:
        network = entry.convert(path)
    except Exception as error:  # a converter given a file that is not the official one may fail in any way
        if downloaded:
            path.unlink(missing_ok=True)
        if entry.sha256 is None and _read_record(record) == digest:
            record.unlink()  # written by an older version from a file that never converted: not to be trusted
        fix = "it was deleted, load again to download it anew" if downloaded else "delete it"
        raise ZooError(
            f"{path} is not a usable {entry.filename} for {name!r} (an error page or an unfinished download?): "
            f"{one_line(error)}; {fix}, or install the official file with `{IMPORT_COMMAND} {name} FILE`"
        ) from None
    return digest, network


def _mismatch(name: str, entry: BuiltinEntry, path: Path, got: str, expected: str, record: Path, downloaded: bool) -> str:
    """The one-line refusal of a file whose checksum is not the expected one, saying how to fix each cause."""
    what = f"downloaded file {path}" if downloaded else str(path)
    if entry.sha256:
        fix = "it was deleted" if downloaded else "it is not the official file"
        return f"{what} has sha256 {got}, but the catalog card of {name!r} pins {expected}; refusing it: {fix}"
    otherwise = "it was deleted" if downloaded else "otherwise use the official file"
    return (
        f"{what} has sha256 {got}, but {record} recorded {expected} for {name!r} from the first copy that converted; "
        f"refusing it: if this file is the official {entry.filename}, delete {record} and try again; {otherwise}"
    )


def _read_record(record: Path) -> str | None:
    """The checksum kept in ``record`` (``sha256sum`` format), None if there is none."""
    try:
        return record.read_text(encoding="utf-8").split()[0].lower()
    except (FileNotFoundError, IndexError):
        return None


def _write_record(record: Path, digest: str, filename: str) -> None:
    """Keep ``digest`` in ``record`` (atomically)."""
    staging = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    staging.write_text(f"{digest}  {filename}\n", encoding="utf-8")
    os.replace(staging, record)


def _copy_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that ``target`` is never seen half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, staging)
    os.replace(staging, target)
