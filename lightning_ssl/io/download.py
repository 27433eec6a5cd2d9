"""Fetching a file over HTTP(S) or ``file://``: progress bar, resume, retries, checksum."""

from __future__ import annotations

import http.client
import logging
import os
import time
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from lightning_ssl.io.checksum import sha256_file
from lightning_ssl.io.errors import ChecksumError, DownloadError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK = 1 << 16
_USER_AGENT = "lightning-ssl-zoo"


class _Transient(Exception):
    """A failure worth retrying (server hiccup, connection lost mid-transfer)."""


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    what: str | None = None,
    hint: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``; verify ``sha256`` when given.

    Bytes go to ``<dest>.part`` first; an existing ``.part`` is resumed with an HTTP Range request
    (restarted from zero when the server ignores it). Server errors and connections lost mid-transfer
    are retried ``retries`` times; a host that cannot be reached fails at once (after at most
    ``timeout`` seconds) with :class:`DownloadError`, whose message says how to get the file by
    hand (plus ``hint``). A checksum mismatch deletes the download and raises :class:`ChecksumError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch(url, partial, timeout, progress, dest.name)
            break
        except _Transient as error:
            if attempt >= retries:
                raise _download_error(url, dest, str(error), what, hint) from error
            attempt += 1
            delay = backoff * 2 ** (attempt - 1)
            log.warning("download of %s failed (%s); retry %d/%d in %.1f s", url, error, attempt, retries, delay)
            time.sleep(delay)
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise _download_error(url, dest, _reason(error), what, hint) from error
    got = sha256_file(partial)
    if sha256 is not None and got != sha256.lower():
        partial.unlink(missing_ok=True)
        raise ChecksumError(f"{url}: downloaded file has sha256 {got}, expected {sha256.lower()}; it was deleted")
    os.replace(partial, dest)
    return dest


def _fetch(url: str, partial: Path, timeout: float, progress: bool, label: str) -> None:
    """One attempt: append to (or restart) ``partial`` until the server's body ends."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urlopen(request, timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and offset:
            log.info("server cannot resume %s from byte %d; restarting", url, offset)
            partial.unlink()
            return _fetch(url, partial, timeout, progress, label)
        if error.code in RETRY_STATUS:
            raise _Transient(_reason(error)) from error
        raise
    except URLError as error:
        if isinstance(error.reason, (ConnectionResetError, ConnectionAbortedError)):
            raise _Transient(_reason(error)) from error
        raise
    with response:
        if offset and getattr(response, "status", None) != 206:
            log.info("server ignored the range request for %s; restarting from byte 0", url)
            offset = 0
        elif offset and not (response.headers.get("Content-Range") or "").startswith(f"bytes {offset}-"):
            partial.unlink()
            raise _Transient(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        received = 0
        with open(partial, "ab" if offset else "wb") as out, tqdm(
            total=None if length is None else offset + length,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not progress,
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as error:
                    raise _Transient(f"connection lost after {offset + received} bytes: {_reason(error)}") from error
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if length is not None and received < length:
        raise _Transient(f"connection closed after {offset + received} of {offset + length} bytes")


def _reason(error: BaseException) -> str:
    """A one-line reason for a failed request."""
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    cause = error.reason if isinstance(error, URLError) else error
    text = str(cause) or type(cause).__name__
    return " ".join(text.split())


def _download_error(url: str, dest: Path, reason: str, what: str | None, hint: str | None) -> DownloadError:
    """The one-line error for a file that could not be fetched."""
    message = (
        f"could not download {what or dest.name} from {url} ({reason}); "
        f"to get it, download the file by hand from {url} and put it at {dest}"
    )
    return DownloadError(message + (f", {hint}" if hint else ""))

