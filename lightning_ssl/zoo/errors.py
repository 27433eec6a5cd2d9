"""Errors the zoo raises; each message is one line that says what failed and what to do."""

from __future__ import annotations

from lightning_ssl.io.errors import ChecksumError, DownloadError


class ZooError(RuntimeError):
    """Base class of the zoo's errors."""


class ZooNotFoundError(ZooError, LookupError):
    """A name (or version) that is neither in the store nor in the built-in registry."""


class ZooChecksumError(ZooError, ChecksumError):
    """A file whose sha256 differs from the recorded one; it is refused, never loaded."""


class ZooDownloadError(ZooError, DownloadError):
    """A file that could not be fetched."""


class ZooMismatchError(ZooError, ValueError):
    """Zoo weights that do not fit the module they are loaded into; nothing was loaded."""


class ZooMetadataError(ZooError, ValueError):
    """An entry's metadata that does not describe a network registered in this version; nothing is imported."""
