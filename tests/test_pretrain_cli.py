"""The main command end to end: `make pretrain`, the CLI, resuming, loggers, errors."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import tiny

from lightning_ssl.cli import main
from lightning_ssl.config import build_config
from lightning_ssl.train import pretrain

REPO = Path(__file__).resolve().parents[1]


def _make_available() -> bool:
    return shutil.which("make") is not None and (REPO / ".venv" / "bin" / "python").exists()


def test_make_pretrain_is_the_cli_with_the_same_arguments():
    if not _make_available():
        pytest.skip("needs make and the project's .venv (created by `make test`)")
    dry = subprocess.run(
        ["make", "-n", "-s", "pretrain", "METHOD=genesis", "DATA=phantom_ct", "ARGS=trainer.max_epochs=3 --optim.lr=0.1"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]
    assert dry.endswith("-m lightning_ssl pretrain method=genesis data=phantom_ct trainer.max_epochs=3 --optim.lr=0.1")


def test_make_passes_dotted_config_keys_given_as_make_variables():
    if not _make_available():
        pytest.skip("needs make and the project's .venv (created by `make test`)")
    dry = subprocess.run(
        ["make", "-n", "-s", "pretrain", "METHOD=byol", "DATA=pneumoniamnist", "data.root=/data/pneumo", "QUIET=1"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]
    assert dry.endswith("-m lightning_ssl pretrain method=byol data=pneumoniamnist data.root=/data/pneumo")


@pytest.mark.slow
def test_make_pretrain_genesis_publishes_to_the_zoo(tmp_path):
    if not _make_available():
        pytest.skip("needs make and the project's .venv (created by `make test`)")
    args = " ".join(tiny(tmp_path / "runs", "trainer.max_steps=2"))
    env = {**os.environ, "LIGHTNING_SSL_ZOO": str(tmp_path / "zoo")}
    done = subprocess.run(["make", "-s", "pretrain", "METHOD=genesis", f"ARGS={args}"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    entry = tmp_path / "zoo" / "genesis_phantom_ct" / "v1"
    metadata = json.loads((entry / "metadata.json").read_text())
    assert metadata["method"] == "genesis" and metadata["data"] == "phantom_ct"
    assert metadata["architecture"]["name"] == "unet" and metadata["input"]["patch_size"] == [32, 32, 16]
    assert (entry / "encoder.safetensors").is_file() and (entry / "decoder.safetensors").is_file()
    from lightning_ssl import zoo

    encoder = zoo.load("genesis_phantom_ct", store=tmp_path / "zoo")
    assert encoder(torch.rand(1, 1, 32, 32, 16))[-1].shape == (1, 16, 8, 8, 4)


@pytest.mark.slow
def test_resume_last_continues_the_same_run_with_one_override(tmp_path):
    runs = tmp_path / "runs"
    assert main(["pretrain", *tiny(runs, "trainer.max_steps=2", "zoo.publish=false")]) == 0
    (run_dir,) = (runs / "genesis_phantom_ct").iterdir()
    first = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 2
    # Only the resume override and a later stop: every other setting comes from the run's saved config.
    assert main(["pretrain", f"output_dir={runs}", "resume=last", "trainer.max_steps=4", "zoo.publish=false"]) == 0
    assert list((runs / "genesis_phantom_ct").iterdir()) == [run_dir]
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == 4
    assert resumed["optimizer_states"][0]["state"], "optimiser state was not kept"
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["version_0", "version_1"]


@pytest.mark.slow
def test_a_run_that_stops_between_validations_validates_its_last_step(tmp_path):
    # 3 training batches per epoch: max_steps=2 stops inside the first epoch, before its validation
    result = pretrain(build_config(tiny(tmp_path, "trainer.max_steps=2", "zoo.publish=false")))
    assert "val/loss" in result.metrics
    assert torch.load(result.best_checkpoint, weights_only=True)["global_step"] == 2


def test_resume_without_a_run_says_how_to_start(tmp_path, capsys):
    assert main(["pretrain", f"output_dir={tmp_path}", "resume=last"]) == 2
    assert "no run of 'genesis_phantom_ct'" in capsys.readouterr().err


def test_an_invalid_zoo_name_fails_before_training(tmp_path, capsys):
    assert main(["pretrain", *tiny(tmp_path, "run_name=My:Run")]) == 2
    assert "invalid zoo name 'My:Run'" in capsys.readouterr().err
    assert not (tmp_path / "My:Run").exists()


def test_config_error_is_one_line_naming_the_key(capsys):
    assert main(["pretrain", "--trainer.max_epoch=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'trainer.max_epoch'" in err and "trainer.max_epochs" in err


def test_a_run_stopped_by_sigterm_during_validation_says_how_to_continue_and_exits_143(monkeypatch, capsys):
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    import lightning_ssl.cli as cli

    def stopped(*args):
        raise SIGTERMException()  # what Lightning raises when the signal arrives outside a training step

    monkeypatch.setattr(cli, "_run_command", stopped)
    assert main(["pretrain"]) == 143
    assert capsys.readouterr().err.strip() == "stopped by SIGTERM: last.ckpt is saved; continue with the same command and resume=last"
