"""The ``python -m zoo`` command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zoo_helpers import small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.zoo.cli import main


def test_publish_list_info(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture) -> None:
    network = small_unet()
    state = {f"network.{key}": value for key, value in network.state_dict().items()}
    hyper_parameters = {"zoo_metadata": unet_metadata(method="byol", data="chex")}
    torch.save({"state_dict": state, "hyper_parameters": hyper_parameters}, tmp_path / "last.ckpt")
    assert main(["--store", str(store), "publish", str(tmp_path / "last.ckpt"), "byol_chex"]) == 0
    assert capsys.readouterr().out.strip() == str(store / "byol_chex" / "v1")
    assert main(["--store", str(store), "list"]) == 0
    listing = capsys.readouterr().out
    assert "byol_chex" in listing and "v1" in listing and "genesis_chest_ct" in listing
    assert main(["--store", str(store), "info", "byol_chex@v1"]) == 0
    assert capsys.readouterr().out.startswith("# byol_chex@v1")
    assert zoo.versions("byol_chex", store=store) == [1]


def test_errors_are_one_line_with_status_1(store: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--store", str(store), "info", "Bad Name"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: invalid zoo name") and err.count("\n") == 1


def test_import_builtin_command(tmp_path: Path, store: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    network = small_unet(seed=3)
    official = tmp_path / "Genesis_Chest_CT.pt"
    torch.save(network.state_dict(), official)
    entry = zoo.BuiltinEntry("http://127.0.0.1:9/none.pt", "toy.pt", None, convert_state_dict, unet_metadata())
    monkeypatch.setitem(zoo.BUILTIN, "toy_cli", entry)
    assert main(["--store", str(store), "import-builtin", "toy_cli", str(official)]) == 0
    assert capsys.readouterr().out.strip() == str(store / "toy_cli" / "v1")
    assert (store / "_downloads" / "toy.pt").is_file()
    official.write_bytes(b"not found")
    assert main(["--store", str(store), "import-builtin", "toy_cli", str(official)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"zoo: error: {official} has sha256") and err.count("\n") == 1


def convert_state_dict(path: Path, metadata: dict) -> torch.nn.Module:
    """The toy converter: a U-Net state dict saved with torch.save."""
    network = small_unet()
    network.load_state_dict(torch.load(path, weights_only=True))
    return network
