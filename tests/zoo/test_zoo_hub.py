"""Entries on the Hugging Face Hub: push to and load from a fake Hub on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from fake_hub import FakeHub
from zoo_helpers import small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.zoo.cli import main

REPO = "someone/toy-unet"


def test_push_uploads_weights_metadata_and_card_then_load_gets_them_back(fake_hub: FakeHub, store: Path, tmp_path: Path) -> None:
    network = small_unet(seed=2)
    directory = zoo.publish_network("toy", network, unet_metadata(method="byol", data="chex", licence="CC-BY-4.0"), store=store)
    commit = zoo.push("toy", f"hf://{REPO}", store=store)
    files = fake_hub.repos[REPO].commits[commit]
    assert sorted(files) == ["README.md", "decoder.safetensors", "encoder.safetensors", "metadata.json"]
    for name in ("encoder.safetensors", "decoder.safetensors", "metadata.json"):
        assert files[name] == (directory / name).read_bytes()
    readme = files["README.md"].decode()
    assert readme.startswith("---\nlibrary_name: lightning-ssl\n") and "# toy@v1" in readme
    assert f'zoo.load("hf://{REPO}", part="encoder")' in readme and "CC-BY-4.0" in readme

    model = zoo.load(f"hf://{REPO}", part="model", store=tmp_path / "elsewhere")
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), network(x))
    assert zoo.metadata(f"hf://{REPO}")["method"] == "byol"
    assert zoo.info(f"hf://{REPO}").startswith(f"# hf://{REPO}\n")
    report = zoo.load_into(small_unet(seed=9).encoder, f"hf://{REPO}")
    assert report.missing == [] and report.unexpected == []


def test_load_at_a_revision_and_offline_from_the_cache(fake_hub: FakeHub, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = small_unet(seed=1), small_unet(seed=2)
    zoo.publish_network("toy", first, unet_metadata(), store=store)
    zoo.publish_network("toy", second, unet_metadata(), store=store)
    old = zoo.push("toy@v1", f"hf://{REPO}", store=store)
    zoo.push("toy@v2", f"hf://{REPO}", store=store)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(zoo.load(f"hf://{REPO}@{old}", part="model")(x), first(x))
        assert torch.equal(zoo.load(f"hf://{REPO}", part="model")(x), second(x))
    requests = len(fake_hub.requests)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with torch.no_grad():
        assert torch.equal(zoo.load(f"hf://{REPO}@{old}", part="model")(x), first(x))
    assert len(fake_hub.requests) == requests


def test_weights_that_differ_from_metadata_are_refused(fake_hub: FakeHub, store: Path) -> None:
    directory = zoo.publish_network("toy", small_unet(seed=1), unet_metadata(), store=store)
    other = zoo.publish_network("other", small_unet(seed=5), unet_metadata(), store=store)
    fake_hub.add(REPO, {
        "metadata.json": (directory / "metadata.json").read_bytes(),
        "encoder.safetensors": (other / "encoder.safetensors").read_bytes(),
        "decoder.safetensors": (directory / "decoder.safetensors").read_bytes(),
    })
    with pytest.raises(zoo.ZooChecksumError, match="encoder.safetensors: sha256 .* does not match .* that metadata.json records"):
        zoo.load(f"hf://{REPO}")


def test_hub_errors_are_one_line(fake_hub: FakeHub, store: Path) -> None:
    with pytest.raises(zoo.ZooDownloadError, match=r"metadata.json of zoo entry hf://nobody/nothing .* from the Hugging Face Hub") as raised:
        zoo.load("hf://nobody/nothing")
    assert "\n" not in str(raised.value)
    with pytest.raises(zoo.ZooError, match="expected hf://USER/REPO"):
        zoo.load("hf://just-a-name")
    zoo.publish_network("toy", small_unet(), unet_metadata(), store=store)
    with pytest.raises(zoo.ZooError, match="push needs a Hub repository as target"):
        zoo.push("toy", "someone/toy", store=store)


def test_push_command(fake_hub: FakeHub, store: Path, capsys: pytest.CaptureFixture) -> None:
    zoo.publish_network("toy", small_unet(), unet_metadata(), store=store)
    assert main(["--store", str(store), "push", "toy", f"hf://{REPO}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pushed toy to hf://{REPO} at commit ") and REPO in fake_hub.repos
    assert main(["--store", str(store), "info", f"hf://{REPO}"]) == 0
    assert capsys.readouterr().out.startswith(f"# hf://{REPO}")


def test_push_to_an_unreachable_hub_is_one_line(store: Path, capsys: pytest.CaptureFixture) -> None:
    zoo.publish_network("toy", small_unet(), unet_metadata(), store=store)
    assert main(["--store", str(store), "push", "toy", f"hf://{REPO}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: could not upload to the Hugging Face Hub repository {REPO}") and err.count("\n") == 1
