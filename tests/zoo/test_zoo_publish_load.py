"""Publishing a network and loading it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
from zoo_helpers import module, random_input, small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.io.checksum import sha256_file
from lightning_ssl.zoo.cli import main as cli_main


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_published_network_loads_with_identical_outputs(store: Path, spatial_dims: int) -> None:
    network = small_unet(spatial_dims)
    zoo.publish_network("small", network, unet_metadata(spatial_dims), store=store)
    x = random_input(spatial_dims)
    with torch.no_grad():
        expected_features = network.encoder(x)
        expected_logits = network(x)
        encoder = zoo.load("small", part="encoder", store=store)
        model = zoo.load("small", part="model", store=store)
        decoder = zoo.load("small", part="decoder", store=store)
        features = encoder(x)
        assert len(features) == len(expected_features)
        for got, want in zip(features, expected_features):
            assert torch.equal(got, want)
        assert torch.equal(model(x), expected_logits)
        assert torch.equal(decoder(expected_features), expected_logits)
    assert not encoder.training and not model.training and not decoder.training
    assert next(model.parameters()).device.type == "cpu"


def test_metadata_records_files_versions_and_callers_fields(store: Path) -> None:
    extra = {"method": "genesis", "data": "toy", "input": {"spatial_dims": 2, "channels": 1}, "version": 99}
    directory = zoo.publish_network("small", small_unet(), unet_metadata(2, **extra), store=store)
    assert directory == store / "small" / "v1"
    assert sorted(p.name for p in directory.iterdir()) == ["decoder.safetensors", "encoder.safetensors", "metadata.json"]
    metadata = json.loads((directory / "metadata.json").read_text())
    assert metadata["name"] == "small" and metadata["version"] == 1
    assert metadata["created"].endswith("+00:00")
    assert metadata["method"] == "genesis" and metadata["input"] == extra["input"]
    assert metadata["architecture"] == {"name": "unet", "kwargs": unet_metadata(2)["architecture"]["kwargs"]}
    for part in ("encoder", "decoder"):
        path = directory / f"{part}.safetensors"
        assert metadata["files"][part] == {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    assert set(metadata["versions"]) == {"lightning_ssl", "torch", "pytorch_lightning", "safetensors", "python"}
    assert metadata["versions"]["torch"] == torch.__version__
    with safetensors.safe_open(directory / "encoder.safetensors", "pt") as handle:
        assert handle.metadata()["part"] == "encoder"


def test_versions_increment_and_name_at_version_selects(store: Path) -> None:
    first, second = small_unet(seed=1), small_unet(seed=2)
    assert zoo.publish_network("small", first, unet_metadata(), store=store).name == "v1"
    assert zoo.publish_network("small", second, unet_metadata(), store=store).name == "v2"
    assert zoo.versions("small", store=store) == [1, 2]
    x = random_input(2)
    with torch.no_grad():
        assert torch.equal(zoo.load("small", part="model", store=store)(x), second(x))
        assert torch.equal(zoo.load("small@v2", part="model", store=store)(x), second(x))
        assert torch.equal(zoo.load("small@v1", part="model", store=store)(x), first(x))
    with pytest.raises(zoo.ZooNotFoundError, match="v3"):
        zoo.load("small@v3", store=store)


def test_store_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "env_store"))
    zoo.publish_network("small", small_unet(), unet_metadata())
    assert (tmp_path / "env_store" / "small" / "v1" / "metadata.json").is_file()
    zoo.load("small")


def test_tampered_weight_file_is_refused(store: Path) -> None:
    directory = zoo.publish_network("small", small_unet(), unet_metadata(), store=store)
    path = directory / "decoder.safetensors"
    tensors = safetensors.torch.load_file(path)
    key = next(iter(tensors))
    tensors[key] = tensors[key] + 1
    safetensors.torch.save_file(tensors, path)
    zoo.load("small", part="encoder", store=store)
    for part in ("decoder", "model"):
        with pytest.raises(zoo.ZooChecksumError, match="decoder.safetensors"):
            zoo.load("small", part=part, store=store)
    with pytest.raises(zoo.ZooChecksumError):
        zoo.load_into(small_unet().decoder, "small", part="decoder", store=store)


def test_unknown_name_says_how_to_make_it(store: Path) -> None:
    with pytest.raises(zoo.ZooNotFoundError, match="zoo publish CHECKPOINT nothing_here"):
        zoo.load("nothing_here", store=store)
    with pytest.raises(ValueError, match="part must be one of"):
        zoo.load("small", part="head", store=store)


def test_architecture_must_rebuild_the_network(store: Path) -> None:
    with pytest.raises(ValueError, match="architecture"):
        zoo.publish_network("small", small_unet(), {"method": "genesis"}, store=store)
    wrong = unet_metadata()
    wrong["architecture"]["kwargs"]["features"] = [4, 8, 32]
    with pytest.raises(ValueError, match="does not rebuild"):
        zoo.publish_network("small", small_unet(), wrong, store=store)
    with pytest.raises(ValueError, match="cannot rebuild"):
        zoo.publish_network("small", small_unet(), {"architecture": {"name": "nope", "kwargs": {}}}, store=store)
    assert zoo.versions("small", store=store) == []


def test_racing_writer_takes_the_next_version(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zoo.publish_network("small", small_unet(seed=1), unet_metadata(), store=store)
    stale = iter([[]])
    real_versions = module("lightning_ssl.zoo.publishing").versions

    def versions_seen_before_the_other_writer(name: str, store: Path | None = None) -> list[int]:
        return next(stale, None) or real_versions(name, store)

    monkeypatch.setattr(module("lightning_ssl.zoo.publishing"), "versions", versions_seen_before_the_other_writer)
    directory = zoo.publish_network("small", small_unet(seed=2), unet_metadata(), store=store)
    assert directory.name == "v2"
    assert json.loads((directory / "metadata.json").read_text())["version"] == 2
    assert sorted(p.name for p in (store / "small").iterdir()) == ["v1", "v2"]


def test_failed_write_leaves_no_entry(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(module("lightning_ssl.zoo.publishing").os, "rename", crash)
    with pytest.raises(OSError, match="disk full"):
        zoo.publish_network("small", small_unet(), unet_metadata(), store=store)
    assert list((store / "small").iterdir()) == []
    assert zoo.versions("small", store=store) == []


def test_encoder_only_entry_loads_its_encoder_and_refuses_the_decoder(store: Path) -> None:
    network = small_unet(2)
    directory = zoo.publish_network("contrastive", network, unet_metadata(2, method="simclr"), store=store, parts=["encoder"])
    assert sorted(p.name for p in directory.glob("*.safetensors")) == ["encoder.safetensors"]
    x = random_input(2)
    with torch.no_grad():
        assert torch.equal(zoo.load("contrastive", store=store)(x)[-1], network.encoder(x)[-1])
    for part in ("decoder", "model"):
        with pytest.raises(zoo.ZooError, match="pretrained with simclr, which trains only encoder; load part='encoder'"):
            zoo.load("contrastive", part=part, store=store)
    assert "Encoder pretrained with **simclr**" in zoo.info("contrastive", store=store)


def test_publishing_needs_the_encoder(store: Path) -> None:
    with pytest.raises(ValueError, match="must include 'encoder'"):
        zoo.publish_network("nothing", small_unet(2), unet_metadata(2), store=store, parts=["decoder"])


def test_next_publish_removes_what_killed_publishes_left_but_not_publishes_in_progress(store: Path) -> None:
    publish = module("lightning_ssl.zoo.publishing")
    zoo.publish_network("small", small_unet(seed=1), unet_metadata(), store=store)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    host = publish._host()
    killed = [store / "small" / f".tmp-{host}-{finished.pid}-{suffix}" for suffix in ("a1b2c3d4", "e5f6g7h8")]
    running = store / "small" / f".tmp-{host}-{os.getpid()}-i9j0k1l2"
    other_machine = store / "small" / ".tmp-elsewhere-12-m3n4o5p6"
    old, recent = store / "small" / ".tmp-q7r8s9t0", store / "small" / ".tmp-u1v2w3x4"
    for folder in (*killed, running, other_machine, old, recent):
        folder.mkdir()
        (folder / "encoder.safetensors").write_bytes(bytes(1 << 20))
    day_ago = time.time() - publish.STALE_AFTER - 60
    os.utime(old, (day_ago, day_ago))
    zoo.publish_network("small", small_unet(seed=2), unet_metadata(), store=store)
    left = sorted(path.name for path in (store / "small").iterdir())
    assert left == sorted(["v1", "v2", running.name, other_machine.name, recent.name])


def test_metadata_naming_an_unregistered_architecture_is_one_line_and_imports_nothing(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    directory = zoo.publish_network("small", small_unet(), unet_metadata(), store=store)
    metadata = json.loads((directory / "metadata.json").read_text())
    metadata["architecture"] = {"name": "os.system", "kwargs": {"command": "touch pwned"}}
    (directory / "metadata.json").write_text(json.dumps(metadata))

    def forbidden(*args: object) -> None:
        raise AssertionError("os.system was called")

    monkeypatch.setattr(os, "system", forbidden)
    with pytest.raises(zoo.ZooMetadataError) as raised:
        zoo.load("small", store=store)
    message = str(raised.value)
    assert message.startswith("cannot rebuild architecture 'os.system': it is not a registered network (known: ")
    assert "\n" not in message and "unet" in message
    assert cli_main(["--store", str(store), "export", "small", "--format", "monai-bundle", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: cannot rebuild architecture 'os.system'") and err.count("\n") == 1
