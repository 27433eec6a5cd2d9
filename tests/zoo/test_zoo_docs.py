"""docs/zoo.md: every command and snippet on the page runs as shown, top to bottom, in a fresh folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from doc_runner import REPOSITORY, run_page
from fake_hub import FakeHub

from lightning_ssl.models import GenesisUNet3D

PAGE = REPOSITORY / "docs" / "zoo.md"


@pytest.mark.slow
def test_every_command_of_the_zoo_page_runs(tmp_path: Path, fake_hub: FakeHub) -> None:
    folder = tmp_path / "page"
    folder.mkdir()
    torch.manual_seed(0)
    network = GenesisUNet3D()
    official = {f"module.{k}": v for k, v in {**network.encoder.state_dict(), **network.decoder.state_dict()}.items()}
    torch.save({"state_dict": official}, folder / "Genesis_Chest_CT.pt")
    done = run_page(PAGE, folder, env={"HF_HOME": str(tmp_path / "hf_home")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "me/genesis-phantom" in fake_hub.repos
    assert "phantom_ct nodule classification" in done.stdout and "| 40 | 0.810 | 0.740 | +0.070 ± 0.030 (3 seeds) |" in done.stdout
    assert (folder / "genesis_phantom_onnx" / "encoder.onnx").is_file()
    assert (folder / "my_zoo" / "genesis_chest_ct" / "v1").is_dir()
