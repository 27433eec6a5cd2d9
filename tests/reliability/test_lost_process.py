"""A process of a multi-process run that dies (killed, out of memory, a lost node) ends the whole run with an
error; the others do not wait for it until the collective timeout (30 minutes by default)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny

from lightning_ssl.train import RUN_DIR_ENV

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TWO_PROCESSES = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]


@pytest.mark.slow
@pytest.mark.ddp
def test_a_killed_process_ends_a_two_process_run_with_an_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != RUN_DIR_ENV}
    env["KILL_RANK"] = "1"
    command = [sys.executable, str(HERE / "interrupted_run.py"), "3", "pretrain", *tiny(tmp_path), *TWO_PROCESSES,
               "trainer.max_steps=100000", "trainer.max_epochs=-1", "zoo.publish=false"]
    start = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, "the run went on without its second process"
    assert time.monotonic() - start < 180, "the surviving process waited for the lost one"
