"""Errors of fetching and checking files; each message is one line that says what failed and what to do."""

from __future__ import annotations


class DownloadError(RuntimeError):
    """A file that could not be fetched."""


class ChecksumError(RuntimeError):
    """A file whose checksum differs from the expected one; it is refused, never used."""


class UploadError(RuntimeError):
    """Files that could not be sent (to the Hugging Face Hub)."""
