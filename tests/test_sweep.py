"""The local sweep runner: W&B sweep files run offline and in-process, and the shipped sweep files validate."""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import tiny
from omegaconf import OmegaConf

from lightning_ssl.cli import main
from lightning_ssl.sweep import METHODS, SearchRandomness, SweepError, SweepResult, load_sweep, propose, run_sweep

pytest.importorskip("sweeps")
pytest.importorskip("wandb")

SWEEPS_DIR = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"
COMMAND = ["${env}", "python", "-m", "lightning_ssl", "pretrain", "method=genesis", "seed=7", "zoo.publish=false", "${args}"]
# One epoch of two batches, so that validation runs and logs val/loss.
ONE_EPOCH = ("trainer.max_epochs=1", "trainer.limit_train_batches=2")


def write_sweep(path: Path, parameters: dict, method: str = "random", **fields) -> Path:
    spec = {"method": method, "metric": {"name": "val/loss", "goal": "minimize"}, "parameters": parameters, "command": COMMAND}
    path.write_text(yaml.safe_dump({**spec, **fields}))
    return path


def saved_config(run_dir: Path):
    return OmegaConf.load(run_dir / "config.yaml")


@pytest.mark.slow
def test_random_sweep_runs_offline_and_each_run_carries_its_parameters(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")  # the runner itself must keep W&B offline
    parameters = {
        "optim.lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2},
        "optim.name": {"values": ["adam", "sgd"]},
    }
    file = write_sweep(tmp_path / "tiny.yaml", parameters)
    results = run_sweep(file, 2, tiny(tmp_path / "runs", *ONE_EPOCH))
    assert len(results) == 2 and all(result.error is None and result.metric is not None for result in results)
    configs = [saved_config(result.run_dir) for result in results]
    for result, cfg in zip(results, configs):
        assert cfg.optim.lr == pytest.approx(result.parameters["optim.lr"]) and cfg.optim.name == result.parameters["optim.name"]
        assert cfg.seed == 7 and cfg.zoo.publish is False, "the fixed arguments of `command` were not applied"
        assert cfg.logger == "wandb" and "sweep-tiny" in cfg.wandb.tags
        assert result.wandb_dir.name.startswith("offline-run-") and result.wandb_dir.is_relative_to(result.run_dir)
    assert configs[0].optim.lr != configs[1].optim.lr
    assert "WANDB_MODE" not in os.environ and "WANDB_RUN_GROUP" not in os.environ


@pytest.mark.slow
def test_grid_stops_when_exhausted_and_a_failed_run_does_not_stop_the_sweep(tmp_path, capsys):
    # a negative learning rate passes the schema and is refused, in one line, when the run's method is built
    parameters = {"optim.lr": {"values": [-1.0, 0.001]}}
    file = write_sweep(tmp_path / "grid.yaml", parameters, method="grid")
    assert main(["sweep", str(file), "--count", "5", *tiny(tmp_path / "runs", *ONE_EPOCH)]) == 0
    out = capsys.readouterr().out
    assert "the grid is exhausted after 2 runs" in out
    assert "run 1 failed: ConfigError: optim.lr=-1.0 must be > 0" in out
    (run_dir,) = [path.parent for path in (tmp_path / "runs").rglob("checkpoints")]
    assert saved_config(run_dir).optim.lr == 0.001 and "best: run 2, val/loss=" in out


def test_a_value_outside_a_choice_fails_before_any_run(tmp_path, capsys):
    file = write_sweep(tmp_path / "bad.yaml", {"optim.name": {"values": ["bogus", "adam"]}}, method="grid")
    assert main(["sweep", str(file), "--count", "2", f"output_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "optim.name" in err and "'bogus', expected one of [sgd, adam, adamw]" in err
    assert not (tmp_path / "runs").exists()


def test_an_unknown_parameter_key_fails_before_any_run(tmp_path, capsys):
    file = write_sweep(tmp_path / "typo.yaml", {"optim.lrr": {"values": [0.1, 0.01]}})
    assert main(["sweep", str(file), "--count", "2", f"output_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'optim.lrr'" in err and "optim.lr" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "hyperband"}, "unknown method 'hyperband'"),
        ({"metric": None}, "missing metric"),
        ({"parameters": {"optim": {"parameters": {"lr": {"value": 0.1}}}}}, "parameter 'optim' is nested"),
        ({"parameters": {"optim.lr": {"min": 0.1}}}, "not a valid W&B sweep config"),
        ({"command": ["python", "-m", "lightning_ssl", "pretrain", "method=genesis"]}, r"command has no \$\{args\}"),
        ({"command": ["python", "train.py", "${args}"]}, "command must run"),
        ({"command": [*COMMAND[:-1], "optim.momentum=fast", "${args}"]}, "invalid value for 'optim.momentum'"),
        ({"parameters": {"optim.lr": {"values": [0.1, "high"]}}}, "parameter optim.lr='high'"),
        ({"method": "grid", "parameters": {"optim.lr": {"min": 0.1, "max": 1.0}}}, "grid search cannot use these parameters"),
    ],
)
def test_a_broken_sweep_file_is_one_clear_error(tmp_path, change, message):
    file = write_sweep(tmp_path / "broken.yaml", {"optim.lr": {"values": [0.1]}})
    spec = {**yaml.safe_load(file.read_text()), **change}
    file.write_text(yaml.safe_dump({key: value for key, value in spec.items() if value is not None}))
    with pytest.raises(SweepError, match=message) as caught:
        load_sweep(file)
    assert len(str(caught.value).splitlines()) == 1


def test_random_and_bayes_need_a_count(tmp_path, capsys):
    file = write_sweep(tmp_path / "endless.yaml", {"optim.lr": {"values": [0.1]}})
    assert main(["sweep", str(file)]) == 2
    assert "give --count N" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(SWEEPS_DIR.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_sweep_files_are_valid_wandb_sweeps_of_known_keys(path):
    sweep = load_sweep(path)  # parses, checks W&B's schema and every parameter against our config
    assert sweep.method in METHODS and {"method", "metric", "parameters", "command"} <= set(sweep.config)
    assert "${args}" in sweep.config["command"] and "logger=wandb" in sweep.fixed_args


def test_bayes_proposes_parameters_after_two_finished_runs():
    sweep = load_sweep(SWEEPS_DIR / "genesis_lr.yaml")
    assert sweep.method == "bayes"
    randomness = SearchRandomness()
    done = [
        SweepResult(1, {"optim.lr": 0.001, "optim.name": "adam"}, 0.2),
        SweepResult(2, {"optim.lr": 0.05, "optim.name": "sgd"}, 0.4),
    ]
    proposal = propose(sweep, done, randomness)
    assert set(proposal) == {"optim.lr", "optim.name"}
    assert 1e-4 <= proposal["optim.lr"] <= 0.1 and proposal["optim.name"] in ("adam", "sgd")
    assert isinstance(proposal["optim.lr"], float)


def test_proposals_do_not_repeat_when_training_reseeds_the_global_generators(tmp_path):
    file = write_sweep(tmp_path / "seeded.yaml", {"optim.lr": {"distribution": "uniform", "min": 0.0, "max": 1.0}})
    sweep, randomness = load_sweep(file), SearchRandomness()
    proposals = []
    for _ in range(3):
        random.seed(42)  # what pretrain's seed_everything does before each run
        np.random.seed(42)
        proposals.append(propose(sweep, [], randomness)["optim.lr"])
    assert len(set(proposals)) == 3


FINETUNE_COMMAND = ["${env}", "python", "-m", "lightning_ssl", "finetune", "data=phantom_xray", "${args}"]
SMALL_XRAY = ("data.num_patients=20", "data.patch_size=[32,32]", "data.batch_size=4", "network.features=[4,8,16]",
              "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.enable_progress_bar=false")


@pytest.mark.slow
def test_finetune_sweep_chooses_on_the_best_checkpoints_validation_metric(tmp_path):
    file = write_sweep(tmp_path / "ft.yaml", {"optim.lr": {"values": [0.01, 0.001]}}, method="grid",
                       command=FINETUNE_COMMAND, metric={"name": "val/acc", "goal": "maximize"})
    results = run_sweep(file, None, [*SMALL_XRAY, f"output_dir={tmp_path / 'runs'}"])
    assert [r.parameters["optim.lr"] for r in results] == [0.01, 0.001] and all(r.error is None for r in results)
    for result in results:
        cfg = saved_config(result.run_dir)
        assert cfg.method.name == "finetune" and cfg.optim.lr == result.parameters["optim.lr"]
        assert 0.0 <= result.metric <= 1.0 and (result.run_dir / "test_metrics.json").is_file()


def test_finetune_sweep_refuses_to_search_on_the_test_split(tmp_path):
    file = write_sweep(tmp_path / "ft.yaml", {"optim.lr": {"values": [0.01]}}, command=FINETUNE_COMMAND,
                       metric={"name": "test/auc", "goal": "maximize"})
    with pytest.raises(SweepError, match="test split.*val/auc"):
        load_sweep(file)
