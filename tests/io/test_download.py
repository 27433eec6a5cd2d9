"""Downloading: progress, checksum, resume, retries, offline failure, file:// URLs."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from zoo_helpers import Server

from lightning_ssl.io import ChecksumError, DownloadError, download

PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def served(http_server: Server) -> Server:
    """The server with ``weights.bin`` (random bytes) in its root."""
    (http_server.root / "weights.bin").write_bytes(PAYLOAD)
    return http_server


def test_download_verifies_and_moves_into_place(served: Server, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "cache" / "weights.bin"
    assert download(served.file_url("weights.bin"), dest, DIGEST) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name("weights.bin.part").exists()
    assert "weights.bin" in capsys.readouterr().err
    assert len(served.requests) == 1 and "Range" not in served.requests[0]


def test_checksum_mismatch_deletes_the_file(served: Server, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "weights.bin"
    with pytest.raises(ChecksumError) as raised:
        download(served.file_url("weights.bin"), dest, "0" * 64, progress=False)
    assert "0" * 64 in str(raised.value) and DIGEST in str(raised.value)
    assert list(dest.parent.iterdir()) == []


def test_partial_file_resumes_with_range(served: Server, tmp_path: Path) -> None:
    dest = tmp_path / "weights.bin"
    dest.with_name("weights.bin.part").write_bytes(PAYLOAD[:100_000])
    download(served.file_url("weights.bin"), dest, DIGEST, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert served.requests[-1]["Range"] == "bytes=100000-"


def test_server_ignoring_range_restarts_from_zero(served: Server, tmp_path: Path) -> None:
    served.support_range = False
    dest = tmp_path / "weights.bin"
    dest.with_name("weights.bin.part").write_bytes(b"junk that is not the start of the file")
    download(served.file_url("weights.bin"), dest, DIGEST, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_interrupted_transfer_is_retried_and_resumed(served: Server, tmp_path: Path) -> None:
    served.cut_after = 120_000
    dest = tmp_path / "weights.bin"
    download(served.file_url("weights.bin"), dest, DIGEST, backoff=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [request.get("Range") for request in served.requests] == [None, "bytes=120000-"]


def test_server_errors_are_retried_then_reported(served: Server, tmp_path: Path) -> None:
    served.fail_first = 2
    download(served.file_url("weights.bin"), tmp_path / "weights.bin", DIGEST, backoff=0, progress=False)
    assert len(served.requests) == 3
    served.fail_first = 5
    with pytest.raises(DownloadError, match="HTTP 503"):
        download(served.file_url("weights.bin"), tmp_path / "again.bin", retries=1, backoff=0, progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):
        served.fail_first = 0
        download(served.file_url("absent.bin"), tmp_path / "absent.bin", progress=False)


def test_unreachable_host_fails_at_once_saying_how_to_get_the_file(closed_port_url: str, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "weights.pt"
    started = time.monotonic()
    with pytest.raises(DownloadError) as raised:
        download(closed_port_url, dest, what="the test weights", hint="or ask a colleague")
    assert time.monotonic() - started < 3
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"could not download the test weights from {closed_port_url}")
    assert f"download the file by hand from {closed_port_url} and put it at {dest}" in message
    assert message.endswith("or ask a colleague")
    assert isinstance(raised.value, RuntimeError)


def test_file_url(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "weights.bin"
    download(source.as_uri(), dest, DIGEST, progress=False)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="put it at"):
        download((tmp_path / "absent.bin").as_uri(), tmp_path / "x.bin", progress=False)
