"""SIGTERM (a scheduler's preemption, `docker stop`, `kill`): the run saves last.ckpt at the end of the step, exits
143 at once, and resume=last continues exactly."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny

REPO = Path(__file__).resolve().parents[2]
EXACT = ["trainer.deterministic=true", "seed=5", "checkpoint.every_n_steps=0", "zoo.publish=false", "data.num_patients=6"]


def cli(output: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "lightning_ssl", "pretrain", *tiny(output), *EXACT, *overrides]


def last_checkpoint(output: Path) -> dict:
    (run_dir,) = (output / "genesis_phantom_ct").iterdir()
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.slow
def test_sigterm_saves_the_step_exits_143_and_resume_continues_exactly(tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    process = subprocess.Popen(cli(stopped, "trainer.max_steps=100000", "trainer.max_epochs=-1"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(stopped.glob("*/*/logs/version_0/hparams.yaml")) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(5)  # well inside training
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert time.monotonic() - sent < 30, "the run did not stop promptly"
    assert process.returncode == 143, err[-2000:]
    lines = [line for line in err.splitlines() if "SIGTERM" in line]
    assert lines and "resume=last" in lines[-1] and "Traceback" not in err
    step = int(re.search(r"after step (\d+)", lines[-1]).group(1))
    assert step >= 1 and last_checkpoint(stopped)["global_step"] == step

    resumed = subprocess.run(cli(stopped, "resume=last", f"trainer.max_steps={step + 3}"), cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = subprocess.run(cli(tmp_path / "whole", f"trainer.max_steps={step + 3}", "trainer.max_epochs=-1"), cwd=REPO, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    got, expected = last_checkpoint(stopped), last_checkpoint(tmp_path / "whole")
    assert got["global_step"] == expected["global_step"] == step + 3
    assert all(torch.equal(got["state_dict"][key], value) for key, value in expected["state_dict"].items())
