"""resume=...: a killed run continues exactly where it stopped; the run and checkpoint resumed are the ones named."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny

from lightning_ssl.cli import main

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# several batches per epoch, so a checkpoint every 5 steps falls inside an epoch
SEVERAL_BATCHES = ["data.num_patients=6", "data.patches_per_volume=4", "trainer.deterministic=true", "seed=3",
                   "checkpoint.every_n_steps=5", "zoo.publish=false", "trainer.log_every_n_steps=1"]


def run(output: Path, *overrides: str, kill_at: int = -1) -> subprocess.CompletedProcess:
    """The CLI's pretrain in a fresh process, SIGKILLed when step ``kill_at`` starts (-1: never)."""
    command = [sys.executable, str(HERE / "interrupted_run.py"), str(kill_at), "pretrain", *tiny(output), *SEVERAL_BATCHES, *overrides]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def final_state(output: Path) -> tuple[dict, list[float]]:
    """The last checkpoint of the only run under ``output`` and every validation loss its logs hold."""
    (run_dir,) = (output / "genesis_phantom_ct").iterdir()
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    losses = [float(row["val/loss"]) for log in sorted(run_dir.glob("logs/version_*/metrics.csv"))
              for row in csv.DictReader(log.open()) if row.get("val/loss")]
    return checkpoint, losses


@pytest.mark.slow
@pytest.mark.parametrize("limit,kill_at", [("trainer.max_steps=12", 8), ("trainer.max_epochs=2", 11)], ids=["max_steps", "max_epochs"])
def test_a_killed_run_resumed_ends_exactly_as_an_uninterrupted_run(tmp_path: Path, capsys, limit: str, kill_at: int) -> None:
    killed = run(tmp_path / "killed", limit, kill_at=kill_at)
    assert killed.returncode != 0, "the run was meant to be killed"
    # the run resumed and the uninterrupted one in this process: only the kill needs a process of its own
    assert main(["pretrain", *tiny(tmp_path / "killed"), *SEVERAL_BATCHES, limit, "resume=last"]) == 0
    assert "resuming run" in capsys.readouterr().out
    assert main(["pretrain", *tiny(tmp_path / "whole"), *SEVERAL_BATCHES, limit]) == 0
    (expected, expected_losses), (got, got_losses) = final_state(tmp_path / "whole"), final_state(tmp_path / "killed")
    assert (got["global_step"], got["epoch"]) == (expected["global_step"], expected["epoch"])
    assert got["lr_schedulers"] == expected["lr_schedulers"]
    assert all(torch.equal(got["state_dict"][key], value) for key, value in expected["state_dict"].items())
    assert got_losses[-1] == expected_losses[-1]


def test_the_newest_run_without_a_checkpoint_is_named_not_an_older_one(tmp_path: Path, capsys) -> None:
    older = tmp_path / "genesis_phantom_ct" / "20260101-000000"
    (older / "checkpoints").mkdir(parents=True)
    (older / "checkpoints" / "last.ckpt").write_bytes(b"")
    (older / "config.yaml").write_text("{}")
    newest = tmp_path / "genesis_phantom_ct" / "20260102-000000"
    newest.mkdir()
    (newest / "config.yaml").write_text("{}")
    assert main(["pretrain", f"output_dir={tmp_path}", "resume=last"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(newest) in err and "has no checkpoint" in err


@pytest.mark.slow
def test_a_checkpoint_path_resumes_that_checkpoint(tmp_path: Path, capsys) -> None:
    assert main(["pretrain", *tiny(tmp_path), *SEVERAL_BATCHES, "trainer.max_steps=8"]) == 0
    (run_dir,) = (tmp_path / "genesis_phantom_ct").iterdir()
    early = run_dir / "checkpoints" / "early.ckpt"
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", early)
    assert main(["pretrain", f"output_dir={tmp_path}", "resume=last", "trainer.max_steps=10"]) == 0
    capsys.readouterr()
    assert main(["pretrain", f"output_dir={tmp_path}", f"resume={early}", "trainer.max_steps=12"]) == 0
    assert f"from {early}" in capsys.readouterr().out
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
    newest_log = sorted(run_dir.glob("logs/version_*/metrics.csv"))[-1]
    trained = [row["step"] for row in csv.DictReader(newest_log.open()) if row.get("train/loss")]
    assert len(trained) == 4, f"steps 8 to 12 trained from early.ckpt (step 8), not 10 to 12 from last.ckpt: {trained}"


def test_extending_a_finished_run_trains_the_extra_epochs_and_a_finished_run_says_so(tmp_path: Path, capsys) -> None:
    assert main(["pretrain", *tiny(tmp_path), "trainer.max_epochs=1", "zoo.publish=false"]) == 0
    (run_dir,) = (tmp_path / "genesis_phantom_ct").iterdir()
    one_epoch = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    capsys.readouterr()
    assert main(["pretrain", f"output_dir={tmp_path}", "resume=last"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is complete" in err and "trainer.max_epochs=2" in err
    assert main(["pretrain", f"output_dir={tmp_path}", "resume=last", "trainer.max_epochs=2"]) == 0
    two_epochs = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert two_epochs["global_step"] == 2 * one_epoch and two_epochs["epoch"] == 2


def test_resume_last_ignores_sweep_trials_and_other_methods(tmp_path: Path, capsys) -> None:
    trial = tmp_path / "genesis_phantom_ct-sweep-lr" / "20260101-000000"
    (trial / "checkpoints").mkdir(parents=True)
    (trial / "config.yaml").write_text("{}")
    (trial / "checkpoints" / "last.ckpt").write_bytes(b"")
    other = tmp_path / "chen_phantom_ct" / "20260101-000000"
    (other / "checkpoints").mkdir(parents=True)
    (other / "config.yaml").write_text("{}")
    (other / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert main(["pretrain", f"output_dir={tmp_path}", "resume=last"]) == 2
    assert "no run of 'genesis_phantom_ct'" in capsys.readouterr().err
