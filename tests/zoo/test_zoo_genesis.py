"""The built-in genesis_chest_ct entry, served from a local file in the official checkpoint layout."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from fake_hub import FakeHub
from zoo_helpers import official_genesis_state

from lightning_ssl import zoo
from lightning_ssl.models import GenesisUNet3D
from lightning_ssl.zoo.converters import convert_models_genesis

CARD = zoo.BUILTIN["genesis_chest_ct"].metadata
HUB_REPO = "MrGiovanni/ModelsGenesis"


@dataclasses.dataclass
class NotATensor:
    """Anything a weights-only load must refuse."""

    value: int


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    """A random GenesisUNet3D encoder + decoder state dict with the official ``module.`` keys."""
    return official_genesis_state()


@pytest.fixture(scope="module")
def official_file(official_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``Genesis_Chest_CT.pt`` in the official layout."""
    path = tmp_path_factory.mktemp("official") / "Genesis_Chest_CT.pt"
    torch.save({"epoch": 1, "state_dict": official_state, "optimizer_state_dict": {}}, path)
    return path


@pytest.mark.slow
def test_genesis_chest_ct_downloads_from_the_hub_converts_and_loads(
    official_file: Path, official_state: dict[str, torch.Tensor], fake_hub: FakeHub
) -> None:
    fake_hub.add(HUB_REPO, {official_file.name: official_file.read_bytes()})
    digest = hashlib.sha256(official_file.read_bytes()).hexdigest()

    model = zoo.load("genesis_chest_ct", part="model")
    reference = GenesisUNet3D()
    official = {key.removeprefix("module."): value for key, value in official_state.items()}
    reference.encoder.load_state_dict({k: v for k, v in official.items() if k.startswith("down_tr")})
    reference.decoder.load_state_dict({k: v for k, v in official.items() if not k.startswith("down_tr")})
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    resolve = f"/{HUB_REPO}/resolve/main/Genesis_Chest_CT.pt"
    assert fake_hub.requests == [("HEAD", resolve), ("GET", resolve)]

    encoder = zoo.load("genesis_chest_ct", part="encoder")
    assert len(fake_hub.requests) == 2
    assert encoder.out_channels == 512 and not encoder.training
    assert torch.equal(encoder.down_tr64.ops[0].conv1.weight, model.encoder.down_tr64.ops[0].conv1.weight)
    rows = {row["name"]: row for row in zoo.list()}
    assert rows["genesis_chest_ct"]["version"] == 1 and rows["genesis_chest_ct"]["architecture"] == "genesis_unet3d"
    card = zoo.info("genesis_chest_ct")
    assert "genesis_chest_ct@v1" in card and digest in card and "sigmoid" in card and HUB_REPO in card



def test_offline_without_the_file_says_where_to_put_it(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(zoo.ZooDownloadError) as raised:
        zoo.load("genesis_chest_ct", store=store)
    message = str(raised.value)
    assert "\n" not in message and "offline (HF_HUB_OFFLINE is set)" in message
    assert f"put it at {store / '_downloads' / 'Genesis_Chest_CT.pt'}" in message
    assert "zoo import-builtin genesis_chest_ct FILE" in message
    assert zoo.versions("genesis_chest_ct", store=store) == []


@pytest.mark.slow
def test_unreachable_hub_says_where_to_put_the_file(closed_port_url: str, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url.rsplit("/", 1)[0])
    # huggingface_hub retries a refused connection five times, 23 s of back-off in all: the message is what is tested
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    with pytest.raises(zoo.ZooDownloadError) as raised:
        zoo.load("genesis_chest_ct", store=store)
    message = str(raised.value)
    assert "\n" not in message and "the Hub cannot be reached" in message
    assert f"put it at {store / '_downloads' / 'Genesis_Chest_CT.pt'}" in message


def test_file_put_in_the_downloads_folder_is_used_offline(official_file: Path, store: Path) -> None:
    (store / "_downloads").mkdir(parents=True)
    (store / "_downloads" / "Genesis_Chest_CT.pt").symlink_to(official_file)
    assert zoo.load("genesis_chest_ct", store=store).out_channels == 512


def test_converter_is_strict_and_accepts_a_bare_state_dict(
    official_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    bare = {key.removeprefix("module."): value for key, value in official_state.items()}
    torch.save(bare, tmp_path / "bare.pt")
    network = convert_models_genesis(tmp_path / "bare.pt", CARD)
    assert torch.equal(network.decoder.out_tr.final_conv.weight, bare["out_tr.final_conv.weight"])
    assert isinstance(network, GenesisUNet3D)
    del bare["up_tr64.ops.1.bn1.weight"]
    bare["extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": bare}, tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"missing \['up_tr64.ops.1.bn1.weight'\]; unexpected \['extra.weight'\]"):
        convert_models_genesis(tmp_path / "short.pt", CARD)


def test_converter_never_unpickles_objects(tmp_path: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "config": NotATensor(1)}, tmp_path / "objects.pt")
    with pytest.raises(zoo.ZooError, match="not unpickled"):
        convert_models_genesis(tmp_path / "objects.pt", CARD)
