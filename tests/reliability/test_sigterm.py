"""SIGTERM (a scheduler's preemption, `docker stop`, `kill`): wherever it lands (a training step, a validation, the end
of an epoch), the run saves last.ckpt, returns 143 and resume=last continues exactly as the uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import tiny

import lightning_ssl.train.run as run_module
from lightning_ssl.cli import main

# 4 training batches per epoch, validation at each epoch's end
EXACT = ["trainer.deterministic=true", "seed=5", "checkpoint.every_n_steps=0", "zoo.publish=false", "data.num_patients=6"]
STEPS = 14


class SigtermAt(pl.Callback):
    """Send this process SIGTERM at the ``occurrence``-th call of ``hook`` outside the sanity check."""

    def __init__(self, hook: str, occurrence: int) -> None:
        self.calls = 0
        self.occurrence = occurrence
        setattr(self, hook, self._count)

    def _count(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.sanity_checking:
            return
        self.calls += 1
        if self.calls == self.occurrence:
            os.kill(os.getpid(), signal.SIGTERM)


def last_checkpoint(output: Path) -> dict:
    (run_dir,) = (output / "genesis_phantom_ct").iterdir()
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The last checkpoint of the run that no signal stops."""
    output = tmp_path_factory.mktemp("whole")
    assert main(["pretrain", *tiny(output), *EXACT, f"trainer.max_steps={STEPS}", "trainer.max_epochs=-1"]) == 0
    return last_checkpoint(output)


@pytest.mark.slow
@pytest.mark.parametrize(
    "hook,occurrence",
    [("on_train_batch_start", 6), ("on_validation_batch_start", 1), ("on_validation_end", 1), ("on_train_epoch_end", 2)],
    ids=["training-step", "inside-validation", "after-validation", "epoch-end"],
)
def test_sigterm_anywhere_saves_returns_143_and_resume_continues_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, uninterrupted: dict, hook: str, occurrence: int
) -> None:
    build = run_module.build_trainer

    def with_signal(*args: object, **kwargs: object):
        trainer, best = build(*args, **kwargs)
        trainer.callbacks.append(SigtermAt(hook, occurrence))
        return trainer, best

    monkeypatch.setattr(run_module, "build_trainer", with_signal)
    overrides = [*tiny(tmp_path), *EXACT, "trainer.max_epochs=-1"]
    assert main(["pretrain", *overrides, "trainer.max_steps=100000"]) == 143
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "SIGTERM" in line]
    assert "resume=last" in line
    step = int(re.search(r"after step (\d+)", line).group(1))
    assert 1 <= step < STEPS and last_checkpoint(tmp_path)["global_step"] == step

    monkeypatch.setattr(run_module, "build_trainer", build)
    assert main(["pretrain", *overrides, "resume=last", f"trainer.max_steps={STEPS}"]) == 0
    got = last_checkpoint(tmp_path)
    assert got["global_step"] == uninterrupted["global_step"] == STEPS
    assert all(torch.equal(got["state_dict"][key], value) for key, value in uninterrupted["state_dict"].items())
