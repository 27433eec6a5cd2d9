"""The built-in genesis_chest_ct entry, served from a local file in the official checkpoint layout."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from zoo_helpers import Server

from lightning_ssl import zoo
from lightning_ssl.models import GenesisUNet3D
from lightning_ssl.zoo.converters import convert_models_genesis


CARD = zoo.BUILTIN["genesis_chest_ct"].metadata


@dataclasses.dataclass
class NotATensor:
    """Anything a weights-only load must refuse."""

    value: int


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    """A random GenesisUNet3D encoder + decoder state dict with the official ``module.`` keys."""
    torch.manual_seed(0)
    network = GenesisUNet3D()
    parts = {**network.encoder.state_dict(), **network.decoder.state_dict()}
    return {f"module.{key}": value for key, value in parts.items()}


@pytest.fixture(scope="module")
def official_file(official_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``Genesis_Chest_CT.pt`` in the official layout."""
    path = tmp_path_factory.mktemp("official") / "Genesis_Chest_CT.pt"
    torch.save({"epoch": 1, "state_dict": official_state, "optimizer_state_dict": {}}, path)
    return path


def test_genesis_chest_ct_downloads_converts_and_loads(
    official_file: Path,
    official_state: dict[str, torch.Tensor],
    http_server: Server,
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (http_server.root / official_file.name).symlink_to(official_file)
    digest = hashlib.sha256(official_file.read_bytes()).hexdigest()
    entry = dataclasses.replace(zoo.BUILTIN["genesis_chest_ct"], url=http_server.file_url(official_file.name), sha256=digest)
    monkeypatch.setitem(zoo.BUILTIN, "genesis_chest_ct", entry)

    model = zoo.load("genesis_chest_ct", part="model")
    reference = GenesisUNet3D()
    official = {key.removeprefix("module."): value for key, value in official_state.items()}
    reference.encoder.load_state_dict({k: v for k, v in official.items() if k.startswith("down_tr")})
    reference.decoder.load_state_dict({k: v for k, v in official.items() if not k.startswith("down_tr")})
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), reference.eval()(x))
    assert len(http_server.requests) == 1

    encoder = zoo.load("genesis_chest_ct", part="encoder")
    assert len(http_server.requests) == 1
    assert encoder.out_channels == 512 and not encoder.training
    assert torch.equal(encoder.down_tr64.ops[0].conv1.weight, model.encoder.down_tr64.ops[0].conv1.weight)
    rows = {row["name"]: row for row in zoo.list()}
    assert rows["genesis_chest_ct"]["version"] == 1 and rows["genesis_chest_ct"]["architecture"] == "genesis_unet3d"
    card = zoo.info("genesis_chest_ct")
    assert "genesis_chest_ct@v1" in card and digest in card and "sigmoid" in card


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
