"""Decoded items kept on disk between runs (``data.cache=disk``): one ``.npz`` per item in ``data.cache_dir``, named by a
digest of its source files (path, size, modification time) and of the settings that shaped it (e.g. the target size),
so a changed file or setting makes a new entry and a later run never decodes an unchanged file again.

Written here because MONAI's ``PersistentDataset`` keys its entries on the item's file names only: an image replaced
under the same name would be served stale.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lightning_ssl.data.errors import DataError
from lightning_ssl.errors import one_line

FORMAT = 1
"""Bumped when what an entry holds changes, so entries of an older layout are made again."""


def cache_folder(cache_dir: str | None, kind: str = "") -> Path:
    """The folder ``kind`` of ``data.cache_dir``, created; DataError when ``data.cache_dir`` is unset or cannot be made."""
    if not cache_dir:
        raise DataError("data.cache=disk needs data.cache_dir=/a/folder/for/the/cache")
    folder = Path(cache_dir).expanduser() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"data.cache_dir={cache_dir!r} cannot be created: {one_line(error)}") from None
    return folder


def source_stamp(paths: Sequence[Path | str]) -> str:
    """The absolute path, size and modification time of each file: an entry made from them is valid while they hold."""
    stamps = []
    for path in paths:
        stat = os.stat(path)
        stamps.append(f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(stamps)


class ArrayCache:
    """Named arrays of items stored in ``folder``, made once by the caller's reader and read back by later runs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def entry(self, sources: Sequence[Path | str], settings: str) -> Path:
        """The file holding the arrays made from ``sources`` with ``settings``."""
        digest = hashlib.sha256(f"{FORMAT}|{source_stamp(sources)}|{settings}".encode()).hexdigest()[:32]
        return self.folder / f"{digest}.npz"

    def arrays(self, sources: Sequence[Path | str], settings: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """The stored arrays of ``sources`` with ``settings``; made by ``make`` and stored when absent or unreadable."""
        path = self.entry(sources, settings)
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {key: stored[key] for key in stored.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # no entry yet, or one that cannot be read: made (again) below
        arrays = make()
        # written under a private name then renamed: loader workers sharing the folder never read half an entry
        partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.partial.npz")
        np.savez(partial, **arrays)
        os.replace(partial, path)
        return arrays
