"""Files from elsewhere: downloads with resume and retries, checksums, inter-process locks."""

from lightning_ssl.io.checksum import sha256_bytes, sha256_file
from lightning_ssl.io.download import download
from lightning_ssl.io.errors import ChecksumError, DownloadError
from lightning_ssl.io.lock import file_lock

__all__ = ["ChecksumError", "DownloadError", "download", "file_lock", "sha256_bytes", "sha256_file"]
