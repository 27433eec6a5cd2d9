"""The semi-supervised methods on two CPU processes (Lightning DDP, gloo): labeled and unlabeled streams, one zoo entry."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_PHANTOM, TINY_XRAY_PAIR

MULTIMIX = ["method=multimix", *TINY_XRAY_PAIR, "data.segmentation.label_budget=4"]
TINY_BRAIN = ["method=cpcseg", "data.label_budget=2", "method.cpc_patch_size=16", "method.cpc_stride=8"]


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("args, entry", [(MULTIMIX, "multimix_multitask"), ([*TINY_PHANTOM, *TINY_BRAIN], "cpcseg_phantom_brain_mri")])
def test_two_process_semi_supervised_pretraining_publishes_once(tmp_path: Path, args: list[str], entry: str) -> None:
    store = tmp_path / "zoo"
    ddp = ["trainer.max_steps=3", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "trainer.enable_progress_bar=false"]
    env = {**{k: v for k, v in os.environ.items() if k != "LIGHTNING_SSL_RUN_DIR"}, "LIGHTNING_SSL_ZOO": str(store)}
    command = [sys.executable, "-m", "lightning_ssl", "pretrain", *args, *ddp, f"output_dir={tmp_path / 'runs'}"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (store / entry).iterdir() if not p.name.startswith(".")) == ["v1"]
    assert {p.name for p in (store / entry / "v1").iterdir()} >= {"encoder.safetensors", "decoder.safetensors"}
