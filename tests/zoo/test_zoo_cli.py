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
