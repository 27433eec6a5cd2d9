"""Pretraining on two CPU processes (Lightning DDP, gloo) through `make pretrain`: one run folder, one zoo entry."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import tiny

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.ddp
@pytest.mark.slow
def test_make_pretrain_on_two_processes_shares_one_run_and_publishes_once(tmp_path: Path) -> None:
    if shutil.which("make") is None or not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("needs make and the project's .venv (created by `make test`)")
    runs, store = tmp_path / "runs", tmp_path / "zoo"
    args = " ".join(tiny(runs, "trainer.max_steps=3", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"))
    env = {**os.environ, "LIGHTNING_SSL_ZOO": str(store)}
    env.pop("LIGHTNING_SSL_RUN_DIR", None)
    # SimCLR: its loss gathers the other process's embeddings, so both processes must run the same steps
    done = subprocess.run(["make", "-s", "pretrain", "METHOD=simclr", f"ARGS={args}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = (runs / "simclr_phantom_ct").iterdir()
    assert (run_dir / "config.yaml").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (store / "simclr_phantom_ct").iterdir() if not p.name.startswith(".")) == ["v1"]
    assert (done.stdout + done.stderr).count("published simclr_phantom_ct@v1") == 1
