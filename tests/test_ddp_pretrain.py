"""Pretraining on two CPU processes (Lightning DDP, gloo): one run folder, one zoo entry."""

import os
import subprocess
import sys

import pytest
from helpers import tiny


@pytest.mark.ddp
@pytest.mark.slow
def test_two_process_pretraining_shares_one_run_and_publishes_once(tmp_path):
    runs, store = tmp_path / "runs", tmp_path / "zoo"
    args = tiny(runs, "trainer.max_steps=2", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp")
    env = {**os.environ, "LIGHTNING_SSL_ZOO": str(store)}
    env.pop("LIGHTNING_SSL_RUN_DIR", None)
    done = subprocess.run([sys.executable, "-m", "lightning_ssl", "pretrain", *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (runs / "genesis_phantom_ct").iterdir()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (store / "genesis_phantom_ct").iterdir() if not p.name.startswith(".")) == ["v1"]
