"""Files from elsewhere: downloads with resume and retries, the Hugging Face Hub, checksums, inter-process locks."""

from lightning_ssl.io.checksum import sha256_bytes, sha256_file
from lightning_ssl.io.download import download
from lightning_ssl.io.errors import ChecksumError, DownloadError, UploadError
from lightning_ssl.io.hub import HubFile, download_hub_file, upload_hub_files
from lightning_ssl.io.lock import file_lock

__all__ = [
    "ChecksumError",
    "DownloadError",
    "HubFile",
    "UploadError",
    "download",
    "download_hub_file",
    "file_lock",
    "sha256_bytes",
    "sha256_file",
    "upload_hub_files",
]
