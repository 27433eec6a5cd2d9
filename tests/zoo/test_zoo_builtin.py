"""Built-in entries: fetched once, converted, published, then loaded from the store."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import torch
from fake_hub import FakeHub
from torch import nn
from zoo_helpers import Server, small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.io.hub import HubFile, name_unresolvable
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
    with pytest.raises(zoo.ZooChecksumError, match=f"but {cached}.sha256 recorded {digest}.*delete {cached}.sha256 and try again"):
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


ERROR_PAGE = b"<html><body>502 Bad Gateway</body></html>"


def test_an_error_page_is_never_trusted_and_the_official_file_then_loads(
    http_server: Server, official: tuple[nn.Module, str], store: Path, builtin_names: list[str]
) -> None:
    network, digest = official
    official_bytes = (http_server.root / FILENAME).read_bytes()
    (http_server.root / FILENAME).write_bytes(ERROR_PAGE)
    register("toy_builtin", http_server.file_url(FILENAME), None, builtin_names)
    cached = store / "_downloads" / FILENAME
    with pytest.raises(zoo.ZooError, match="not a usable toy_official.pt .* it was deleted") as raised:
        zoo.load("toy_builtin", store=store)
    assert "zoo import-builtin toy_builtin FILE" in str(raised.value) and "\n" not in str(raised.value)
    assert not cached.exists() and not cached.with_name(FILENAME + ".sha256").exists()
    (http_server.root / FILENAME).write_bytes(official_bytes)
    model = zoo.load("toy_builtin", part="model", store=store)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), network(x))
    assert cached.with_name(FILENAME + ".sha256").read_text().split()[0] == digest


def test_a_record_of_an_error_page_left_by_an_older_version_is_dropped(
    closed_port_url: str, official: tuple[nn.Module, str], http_server: Server, store: Path, builtin_names: list[str]
) -> None:
    cached = store / "_downloads" / FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(ERROR_PAGE)
    record = cached.with_name(FILENAME + ".sha256")
    record.write_text(f"{hashlib.sha256(ERROR_PAGE).hexdigest()}  {FILENAME}\n")
    register("toy_builtin", closed_port_url, None, builtin_names)
    with pytest.raises(zoo.ZooError, match=f"{cached} is not a usable .* delete it, or install the official file"):
        zoo.load("toy_builtin", store=store)
    assert not record.exists() and cached.exists()
    cached.write_bytes((http_server.root / FILENAME).read_bytes())
    zoo.load("toy_builtin", store=store)
    assert record.read_text().split()[0] == official[1]


def test_import_builtin_installs_a_file_downloaded_elsewhere(
    closed_port_url: str, official: tuple[nn.Module, str], http_server: Server, store: Path, builtin_names: list[str]
) -> None:
    network, digest = official
    register("toy_builtin", closed_port_url, None, builtin_names)
    directory = zoo.import_builtin("toy_builtin", http_server.root / FILENAME, store=store)
    assert directory == store / "toy_builtin" / "v1"
    assert (store / "_downloads" / FILENAME).read_bytes() == (http_server.root / FILENAME).read_bytes()
    assert (store / "_downloads" / (FILENAME + ".sha256")).read_text().split()[0] == digest
    model = zoo.load("toy_builtin", part="model", store=store)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), network(x))
    assert zoo.import_builtin("toy_builtin", http_server.root / FILENAME, store=store) == directory
    assert zoo.versions("toy_builtin", store=store) == [1] and http_server.requests == []


def test_import_builtin_applies_the_same_checks(
    closed_port_url: str, official: tuple[nn.Module, str], tmp_path: Path, store: Path, builtin_names: list[str]
) -> None:
    register("toy_builtin", closed_port_url, official[1], builtin_names)
    other = tmp_path / "other.pt"
    torch.save(small_unet(seed=8).state_dict(), other)
    with pytest.raises(zoo.ZooChecksumError, match=f"{other} has sha256 .* the catalog card of 'toy_builtin' pins {official[1]}"):
        zoo.import_builtin("toy_builtin", other, store=store)
    zoo.register_builtin("toy_builtin", dataclasses.replace(zoo.BUILTIN["toy_builtin"], sha256=None), overwrite=True)
    page = tmp_path / "page.pt"
    page.write_bytes(ERROR_PAGE)
    with pytest.raises(zoo.ZooError, match="is not a usable toy_official.pt"):
        zoo.import_builtin("toy_builtin", page, store=store)
    with pytest.raises(zoo.ZooError, match="no such file"):
        zoo.import_builtin("toy_builtin", tmp_path / "absent.pt", store=store)
    with pytest.raises(zoo.ZooNotFoundError, match="not a built-in zoo entry"):
        zoo.import_builtin("nobody", other, store=store)
    assert zoo.versions("toy_builtin", store=store) == [] and page.exists()


def register_hub(name: str, revision: str, names: list[str]) -> None:
    """Register a toy built-in whose file is on the (fake) Hub."""
    hub = HubFile("toy/official", FILENAME, revision)
    zoo.register_builtin(name, zoo.BuiltinEntry(hub.url, FILENAME, None, convert_toy, unet_metadata(), hub=hub))
    names.append(name)


def test_hub_file_is_pinned_to_the_revision_and_cached_by_hugging_face(
    fake_hub: FakeHub, official: tuple[nn.Module, str], http_server: Server, store: Path, tmp_path: Path,
    builtin_names: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    network, digest = official
    pinned = fake_hub.add("toy/official", {FILENAME: (http_server.root / FILENAME).read_bytes()})
    fake_hub.add("toy/official", {FILENAME: b"a newer file on main"})
    register_hub("toy_hub", pinned, builtin_names)
    model = zoo.load("toy_hub", part="model", store=store)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), network(x))
    assert fake_hub.requests == [("HEAD", f"/toy/official/resolve/{pinned}/{FILENAME}"), ("GET", f"/toy/official/resolve/{pinned}/{FILENAME}")]
    assert (store / "_downloads" / (FILENAME + ".sha256")).read_text().split()[0] == digest
    assert not (store / "_downloads" / FILENAME).exists(), "the file stays in the Hugging Face cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    zoo.load("toy_hub", store=tmp_path / "second_store")
    assert len(fake_hub.requests) == 2


def test_missing_hub_revision_is_one_line(fake_hub: FakeHub, store: Path, builtin_names: list[str]) -> None:
    fake_hub.add("toy/official", {FILENAME: b"x"})
    register_hub("toy_hub", "v9", builtin_names)
    with pytest.raises(zoo.ZooDownloadError, match=r"toy/official@v9/toy_official.pt\) from the Hugging Face Hub at http://127.0.0.1:\d+: ") as raised:
        zoo.load("toy_hub", store=store)
    assert "\n" not in str(raised.value) and "zoo import-builtin toy_hub FILE" in str(raised.value)


def test_a_hub_whose_name_does_not_resolve_fails_at_once_and_its_cached_file_still_loads(
    fake_hub: FakeHub, official: tuple[nn.Module, str], http_server: Server, store: Path, tmp_path: Path,
    builtin_names: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    pinned = fake_hub.add("toy/official", {FILENAME: (http_server.root / FILENAME).read_bytes()})
    register_hub("toy_hub", pinned, builtin_names)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")
    started = time.monotonic()
    with pytest.raises(zoo.ZooDownloadError, match=r"the name hub.invalid does not resolve \(no network\?\) and the file is not in the Hugging Face cache"):
        zoo.load("toy_hub", store=store)
    assert time.monotonic() - started < 3 and fake_hub.requests == []
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    zoo.load("toy_hub", store=store)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")
    zoo.load("toy_hub", store=tmp_path / "second_store")  # from the Hugging Face cache, without asking the Hub
    assert len(fake_hub.requests) == 2


def test_behind_a_proxy_an_unresolvable_hub_name_is_left_to_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert name_unresolvable("http://hub.invalid") and not name_unresolvable("http://127.0.0.1:8080")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    assert not name_unresolvable("http://hub.invalid")
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    assert not name_unresolvable("http://hub.invalid")
    monkeypatch.setenv("NO_PROXY", "hub.invalid")
    assert name_unresolvable("http://hub.invalid")
