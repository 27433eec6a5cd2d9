"""The ``python -m lightning_ssl zoo`` command line."""

from __future__ import annotations

import subprocess
import sys
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


def test_listing_the_zoo_and_help_import_neither_torch_nor_monai(store: Path) -> None:
    code = (
        "import sys; from lightning_ssl.cli import main\n"
        f"assert main(['zoo', '--store', {str(store)!r}, 'list']) == 0\n"
        f"assert main(['zoo', '--store', {str(store)!r}, 'info', 'genesis_chest_ct']) == 0\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY', [m for m in ('torch', 'monai', 'pytorch_lightning') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "genesis_chest_ct" in done.stdout and done.stdout.strip().endswith("HEAVY []")
