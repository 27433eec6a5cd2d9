"""Built-in entries: fetched once, converted, published, then loaded from the store."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from zoo_helpers import Server, small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.models import build_network

FILENAME = "toy_official.pt"


def convert_toy(path: Path, metadata: Mapping[str, Any]) -> nn.Module:
    """A converter for a plain torch-saved U-Net state dict."""
    network = build_network(metadata["architecture"]["name"], **metadata["architecture"]["kwargs"])
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return network


@pytest.fixture
def official(http_server: Server) -> tuple[nn.Module, str]:
    """The 'official' toy weights served over HTTP, with their sha256."""
    network = small_unet(seed=4)
    path = http_server.root / FILENAME
    torch.save(network.state_dict(), path)
    return network, hashlib.sha256(path.read_bytes()).hexdigest()


def register(name: str, url: str, sha256: str | None, names: list[str]) -> None:
    """Register a toy built-in for the duration of a test."""
    entry = zoo.BuiltinEntry(url, FILENAME, sha256, convert_toy, unet_metadata(method="toy"), "run `make toy`")
    zoo.register_builtin(name, entry)
    names.append(name)


def test_first_load_fetches_converts_publishes_then_uses_the_store(
    http_server: Server, official: tuple[nn.Module, str], store: Path, builtin_names: list[str]
) -> None:
    network, digest = official
    register("toy_builtin", http_server.file_url(FILENAME), digest, builtin_names)
    model = zoo.load("toy_builtin", part="model", store=store)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), network(x))
    assert len(http_server.requests) == 1
    assert (store / "_downloads" / FILENAME).is_file()
    metadata = zoo.list(store=store)
    assert metadata[0]["name"] == "toy_builtin" and metadata[0]["version"] == 1
    zoo.load("toy_builtin", part="encoder", store=store)
    assert len(http_server.requests) == 1
    assert "sha256 " + digest in zoo.info("toy_builtin", store=store)


def test_wrong_checksum_publishes_nothing(
    http_server: Server, official: tuple[nn.Module, str], store: Path, builtin_names: list[str]
) -> None:
    register("toy_builtin", http_server.file_url(FILENAME), "f" * 64, builtin_names)
    with pytest.raises(zoo.ZooChecksumError, match="f" * 64):
        zoo.load("toy_builtin", store=store)
    assert zoo.versions("toy_builtin", store=store) == []
    assert not (store / "_downloads" / FILENAME).exists()


def test_unpinned_entry_trusts_the_first_download_only(
    http_server: Server, official: tuple[nn.Module, str], store: Path, builtin_names: list[str]
) -> None:
    _, digest = official
    register("toy_builtin", http_server.file_url(FILENAME), None, builtin_names)
    zoo.load("toy_builtin", store=store)
    cached = store / "_downloads" / FILENAME
    assert cached.with_name(FILENAME + ".sha256").read_text().split()[0] == digest
    assert f'"sha256": "{digest}"' in (store / "toy_builtin" / "v1" / "metadata.json").read_text()
    torch.save(small_unet(seed=7).state_dict(), cached)
    for child in (store / "toy_builtin" / "v1").iterdir():
        child.unlink()
    (store / "toy_builtin" / "v1").rmdir()
    with pytest.raises(zoo.ZooChecksumError, match="recorded at first download"):
        zoo.load("toy_builtin", store=store)
    cached.unlink()
    torch.save(small_unet(seed=7).state_dict(), http_server.root / FILENAME)
    with pytest.raises(zoo.ZooChecksumError, match=digest):
        zoo.load("toy_builtin", store=store)
    assert zoo.versions("toy_builtin", store=store) == []


def test_offline_builtin_fails_at_once_with_how_to_get_it(
    closed_port_url: str, store: Path, builtin_names: list[str]
) -> None:
    register("toy_builtin", closed_port_url, None, builtin_names)
    started = time.monotonic()
    with pytest.raises(zoo.ZooDownloadError) as raised:
        zoo.load("toy_builtin", store=store)
    assert time.monotonic() - started < 3
    message = str(raised.value)
    assert str(store / "_downloads" / FILENAME) in message
    assert "download the file by hand" in message and "LIGHTNING_SSL_ZOO" in message and "make toy" in message
    assert zoo.versions("toy_builtin", store=store) == []


def test_file_put_in_the_cache_by_hand_is_used_offline(
    closed_port_url: str, store: Path, builtin_names: list[str]
) -> None:
    network = small_unet(seed=6)
    (store / "_downloads").mkdir(parents=True)
    torch.save(network.state_dict(), store / "_downloads" / FILENAME)
    register("toy_builtin", closed_port_url, None, builtin_names)
    model = zoo.load("toy_builtin", part="model", store=store)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), network(x))


def test_builtin_over_file_url(official: tuple[nn.Module, str], http_server: Server, store: Path, builtin_names: list[str]) -> None:
    network, digest = official
    register("toy_builtin", (http_server.root / FILENAME).as_uri(), digest, builtin_names)
    zoo.load("toy_builtin", store=store)
    assert http_server.requests == []


def test_register_refuses_duplicates_and_bad_names(builtin_names: list[str]) -> None:
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_builtin("genesis_chest_ct", zoo.BUILTIN["genesis_chest_ct"])
    with pytest.raises(ValueError, match="invalid zoo name"):
        zoo.register_builtin("Bad Name", zoo.BUILTIN["genesis_chest_ct"])


def test_concurrent_first_loads_fetch_and_publish_once(
    http_server: Server, official: tuple[nn.Module, str], store: Path, builtin_names: list[str]
) -> None:
    _, digest = official
    register("toy_builtin", http_server.file_url(FILENAME), digest, builtin_names)
    with ThreadPoolExecutor(max_workers=4) as pool:
        modules = list(pool.map(lambda _: zoo.load("toy_builtin", store=store), range(4)))
    assert len(modules) == 4
    assert zoo.versions("toy_builtin", store=store) == [1]
    assert len(http_server.requests) == 1
