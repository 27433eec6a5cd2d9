"""Files on the Hugging Face Hub through huggingface_hub (its cache, resume, revision pinning and ``HF_HUB_OFFLINE``).

huggingface_hub is imported when a file is fetched or sent, not with this module: importing it takes half a second.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lightning_ssl.errors import one_line
from lightning_ssl.io.errors import DownloadError, UploadError

HUB_URL = "https://huggingface.co"
ENDPOINT_VAR = "HF_ENDPOINT"


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub model repository at a pinned revision (a commit hash, or a branch or tag name)."""

    repo: str
    filename: str
    revision: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}/{self.filename}"

    @property
    def url(self) -> str:
        """The file's address on the public Hub (for people; downloads go through huggingface_hub)."""
        return f"{HUB_URL}/{self.repo}/resolve/{self.revision}/{self.filename}"


def hub_endpoint() -> str:
    """The Hub's address: ``$HF_ENDPOINT`` as it is now (huggingface_hub reads it once, when imported), else the default."""
    from huggingface_hub import constants

    return (os.environ.get(ENDPOINT_VAR) or constants.ENDPOINT).rstrip("/")


def download_hub_file(file: HubFile, *, what: str, hint: str, timeout: float = 10.0) -> Path:
    """The local path of ``file`` in the Hugging Face cache, downloaded if it is not there; DownloadError (one line
    ending with ``hint``) when it can be neither downloaded nor found in the cache."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    endpoint = hub_endpoint()
    unknown = name_unresolvable(endpoint)
    try:
        return Path(hf_hub_download(file.repo, file.filename, revision=file.revision, endpoint=endpoint,
                                    etag_timeout=timeout, local_files_only=unknown))
    except LocalEntryNotFoundError:
        if constants.is_offline_mode():
            reason = "offline (HF_HUB_OFFLINE is set) and not in the Hugging Face cache"
        elif unknown:
            host = urlsplit(endpoint).hostname
            reason = f"the name {host} does not resolve (no network?) and the file is not in the Hugging Face cache"
        else:
            reason = "the Hub cannot be reached and the file is not in the Hugging Face cache"
    except Exception as error:  # the client's own HTTP and transport errors differ between its versions
        reason = _reason(error)
    raise DownloadError(f"could not download {what} ({file}) from the Hugging Face Hub at {endpoint}: {reason}; {hint}")


def name_unresolvable(endpoint: str) -> bool:
    """Whether ``endpoint``'s host has no address here and no proxy would look it up instead. huggingface_hub retries
    a failed name lookup five times with backoff (about 20 s); a machine without DNS gets the same answer each time,
    so the cache is read without asking."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    proxies = urllib.request.getproxies()
    if (parts.scheme in proxies or "all" in proxies) and not urllib.request.proxy_bypass(host):
        return False
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return True
    return False


def upload_hub_files(repo: str, files: Mapping[str, bytes], message: str, revision: str | None = None) -> str:
    """Commit ``files`` (path in the repository -> content) to the Hub model repository ``repo``, creating it if
    needed; the new commit's hash. UploadError (one line) when the Hub refuses or cannot be reached."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub_endpoint())
    try:
        api.create_repo(repo, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content) for path, content in files.items()]
        commit = api.create_commit(repo, operations, commit_message=message, revision=revision)
    except Exception as error:  # the client's own HTTP and transport errors differ between its versions
        raise UploadError(f"could not upload to the Hugging Face Hub repository {repo} at {api.endpoint}: {_reason(error)}") from None
    return commit.oid


def _reason(error: BaseException) -> str:
    """The first line of a Hub client error (its messages run over several lines)."""
    text = str(error).strip()
    return one_line(text.splitlines()[0]) if text else type(error).__name__
