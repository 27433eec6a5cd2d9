"""A folder named `zoo` in the working directory (a user's store, say) changes nothing: pretrain, finetune and the zoo
commands run from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny


@pytest.mark.slow
def test_pretrain_finetune_and_zoo_commands_run_beside_a_zoo_folder(tmp_path: Path) -> None:
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "notes.txt").write_text("my own store")
    env = {**os.environ, "LIGHTNING_SSL_ZOO": str(tmp_path / "zoo"), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lightning_ssl", *args], cwd=tmp_path, env=env, capture_output=True, text=True)

    pretrained = cli("pretrain", *tiny("runs"), "trainer.max_steps=3", "zoo.name=beside_zoo")
    assert pretrained.returncode == 0, pretrained.stderr[-2000:]
    finetuned = cli("finetune", *tiny("runs"), "method.task=segmentation", "method.init=zoo:beside_zoo", "trainer.max_steps=2")
    assert finetuned.returncode == 0, finetuned.stderr[-2000:]
    listed = cli("zoo", "list")
    assert listed.returncode == 0 and "beside_zoo" in listed.stdout
    card = cli("zoo", "info", "beside_zoo")
    assert card.returncode == 0 and "# beside_zoo@v1" in card.stdout
    missing = cli("zoo", "info", "absent_entry")
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1


def test_import_zoo_is_not_the_project() -> None:
    done = subprocess.run([sys.executable, "-c", "import zoo; zoo.load"], cwd="/", capture_output=True, text=True)
    assert done.returncode != 0, "a top-level `zoo` package must not exist: the zoo is `from lightning_ssl import zoo`"
