"""docs/zoo.md: every command and snippet on the page runs as shown, top to bottom, in a fresh folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub

from lightning_ssl.models import GenesisUNet3D

REPOSITORY = Path(__file__).resolve().parents[2]
PAGE = REPOSITORY / "docs" / "zoo.md"
BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.S)


def page_as_script() -> str:
    """The page's bash and python blocks as one bash script that stops at the first failure."""
    steps = ["set -euo pipefail"]
    for language, code in BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        steps.append(code if language == "bash" else f"python - <<'PYTHON'\n{code}PYTHON")
    return "\n".join(steps) + "\n"


@pytest.mark.slow
def test_every_command_of_the_zoo_page_runs(tmp_path: Path, fake_hub: FakeHub) -> None:
    torch.manual_seed(0)
    network = GenesisUNet3D()
    official = {f"module.{k}": v for k, v in {**network.encoder.state_dict(), **network.decoder.state_dict()}.items()}
    torch.save({"state_dict": official}, tmp_path / "Genesis_Chest_CT.pt")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
        "HF_HOME": str(tmp_path / "hf_home"),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(["bash", "-c", page_as_script()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "me/genesis-phantom" in fake_hub.repos
    assert "phantom_ct nodule classification" in done.stdout and "| 40 | 0.810 | 0.740 | +0.070 ± 0.030 (3 seeds) |" in done.stdout
    assert (tmp_path / "genesis_phantom_onnx" / "encoder.onnx").is_file()
    assert (tmp_path / "my_zoo" / "genesis_chest_ct" / "v1").is_dir()
