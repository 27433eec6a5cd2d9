"""Run a pretraining from a resolved config: data, method, trainer, checkpoints, loggers, zoo publishing."""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
)
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

import zoo
from lightning_ssl.config import ConfigError
from lightning_ssl.data import DATASETS
from lightning_ssl.methods import METHODS
from zoo.store import METADATA_FILE, validate_name

log = logging.getLogger(__name__)

RUN_DIR_ENV = "LIGHTNING_SSL_RUN_DIR"
CONFIG_FILE = "config.yaml"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


TEST_METRICS = "test_metrics.json"


@dataclass
class FinetuneResult:
    """Where a fine-tuning run wrote its outputs, and the best checkpoint's metrics on the test and validation splits.

    ``validation`` (``val/*``, and the last ``train/*``) is what a hyper-parameter search may choose on;
    ``metrics`` (``test/*``) is what it reports.
    """

    run_dir: Path
    best_checkpoint: Path | None
    init: dict[str, Any]
    metrics: dict[str, float]
    validation: dict[str, float]


@dataclass
class PretrainResult:
    """Where a pretraining run wrote its outputs."""

    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    zoo_entry: Path | None
    metrics: dict[str, float]


def find_resume_dir(output_dir: str | Path, run_name: str, resume: str) -> Path:
    """The run directory that ``resume`` names: ``last`` (newest run of this name), a run folder or a checkpoint."""
    if resume == "last":
        runs = sorted((Path(output_dir) / run_name).glob(f"*/{LAST_CHECKPOINT}"), key=lambda p: p.stat().st_mtime)
        if not runs:
            raise FileNotFoundError(
                f"resume=last: no run of {run_name!r} with a last checkpoint under {output_dir}; start one without resume"
            )
        return runs[-1].parent.parent
    path = Path(resume)
    if path.is_file():
        return path.parent.parent
    if (path / LAST_CHECKPOINT).is_file():
        return path
    raise FileNotFoundError(f"resume={resume!r}: expected 'last', a run folder holding {LAST_CHECKPOINT}, or a .ckpt file")


def resolve_run_dir(cfg: DictConfig) -> Path:
    """This run's folder, shared by every DDP rank (the launcher passes it on in the environment)."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited)
    if cfg.resume:
        return find_resume_dir(cfg.output_dir, cfg.run_name, cfg.resume)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.output_dir) / cfg.run_name / stamp
    run_dir, k = base, 1
    while run_dir.exists():
        run_dir, k = base.with_name(f"{stamp}-{k}"), k + 1
    return run_dir


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """The configured logger, writing inside the run folder (a new version folder per resumed attempt)."""
    if cfg.logger == "none":
        return []
    if cfg.logger == "csv":
        return [CSVLogger(save_dir=str(run_dir), name="logs")]
    if cfg.logger == "tensorboard":
        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard")]
    from pytorch_lightning.loggers import WandbLogger

    settings = {k: v for k, v in OmegaConf.to_container(cfg.wandb, resolve=True).items() if v not in (None, [])}
    wandb_logger = WandbLogger(
        save_dir=str(run_dir), name=cfg.run_name, config=OmegaConf.to_container(cfg, resolve=True), **settings
    )
    return [wandb_logger]


def build_trainer(cfg: DictConfig, run_dir: Path) -> tuple[pl.Trainer, ModelCheckpoint]:
    """A Trainer with checkpoints (last and best on validation loss), LR monitor, progress bar and loggers."""
    checkpoint = ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"),
        filename="best-{epoch}-{step}",
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        save_last=True,
    )
    callbacks: list[pl.Callback] = [checkpoint]
    loggers = build_loggers(cfg, run_dir)
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.early_stopping.patience > 0:
        # strict=False: a run stopped by max_steps before its first validation has no metric to check yet
        callbacks.append(
            EarlyStopping(monitor=cfg.early_stopping.monitor, patience=cfg.early_stopping.patience, mode="min", strict=False)
        )
    trainer_args: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer = pl.Trainer(default_root_dir=str(run_dir), logger=loggers or False, callbacks=callbacks, **trainer_args)
    return trainer, checkpoint


@contextmanager
def _run(cfg: DictConfig) -> Iterator[tuple[Path, Any, Any, pl.Trainer, ModelCheckpoint]]:
    """Seed, the run folder (shared with DDP ranks through the environment), data, method, trainer; config saved."""
    pl.seed_everything(cfg.seed, workers=True)
    run_dir = resolve_run_dir(cfg)
    owns_env = RUN_DIR_ENV not in os.environ
    os.environ[RUN_DIR_ENV] = str(run_dir)
    trainer = None
    try:
        datamodule = DATASETS[cfg.data.name](cfg.data)
        method = METHODS[cfg.method.name](OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
        trainer, checkpoint = build_trainer(cfg, run_dir)
        if trainer.is_global_zero:
            run_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
        yield run_dir, datamodule, method, trainer, checkpoint
    except BaseException:
        _finish_wandb(trainer, exit_code=1)
        raise
    else:
        _finish_wandb(trainer, exit_code=0)
    finally:
        if owns_env:
            os.environ.pop(RUN_DIR_ENV, None)
        # Lightning leaves the process group up; a gloo group still alive at interpreter exit can abort the process
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _wandb_logger(trainer: pl.Trainer) -> Logger | None:
    """The trainer's W&B logger, if any (matched by name: wandb is an optional dependency)."""
    return next((logger for logger in trainer.loggers if type(logger).__name__ == "WandbLogger"), None)


def _wandb_run(trainer: pl.Trainer) -> Any | None:
    """The W&B run the trainer logs to, if any."""
    logger = _wandb_logger(trainer)
    return None if logger is None else logger.experiment


def log_zoo_artifact(run: Any, entry: Path, name: str) -> None:
    """Upload a published zoo entry (weights, metadata, card) to ``run`` as a W&B model artifact."""
    import wandb

    metadata = json.loads((entry / METADATA_FILE).read_text())
    artifact = wandb.Artifact(name, type="model", description=f"lightning-ssl zoo entry {name} {entry.name}", metadata=metadata)
    artifact.add_dir(str(entry))
    run.log_artifact(artifact, aliases=["latest", entry.name])


def _finish_wandb(trainer: pl.Trainer | None, exit_code: int) -> None:
    """End the W&B run this run started, so the next run in the same process (a sweep, a test) gets its own."""
    if trainer is None or _wandb_logger(trainer) is None:
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def pretrain(cfg: DictConfig) -> PretrainResult:
    """Pretrain ``cfg.method`` on ``cfg.data`` and publish the encoder/decoder to the zoo (main process only)."""
    zoo_name = cfg.zoo.name or cfg.run_name
    if cfg.zoo.publish:
        try:
            validate_name(zoo_name)
        except ValueError as error:
            raise ConfigError(f"{error} (set zoo.name=..., or run_name=..., before training starts)") from None
    with _run(cfg) as (run_dir, datamodule, method, trainer, checkpoint):
        ckpt_path = str(run_dir / LAST_CHECKPOINT) if cfg.resume else None
        if method.semi_supervised:
            datamodule.setup("fit")
            trainer.fit(
                method,
                train_dataloaders=datamodule.semi_supervised_dataloader(),
                val_dataloaders=datamodule.val_dataloader(),
                ckpt_path=ckpt_path,
            )
        else:
            trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt_path)
        # Lightning saves "last" at epoch and validation ends; a run stopped by max_steps mid-epoch
        # would otherwise resume from an older step.
        trainer.save_checkpoint(run_dir / LAST_CHECKPOINT)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
        last = run_dir / LAST_CHECKPOINT
        entry = None
        if trainer.is_global_zero and cfg.zoo.publish and (best or last):
            entry = zoo.publish(best or last, zoo_name, store=cfg.zoo.store)
            log.info("published %s to the zoo at %s", zoo_name, entry)
            run = _wandb_run(trainer)
            if run is not None and not run.offline:
                log_zoo_artifact(run, entry, zoo_name)
        return PretrainResult(run_dir, best, last, entry, metrics)


def whole_split(loader: DataLoader, trainer: pl.Trainer) -> DataLoader:
    """``loader`` with each sample on exactly one process.

    Lightning's default distributed sampler pads the split with repeated samples so every process
    gets as many; test metrics must count each sample once.
    """
    if trainer.world_size == 1:
        return loader
    sampler = UnrepeatedDistributedSampler(loader.dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers)


def finetune(cfg: DictConfig) -> FinetuneResult:
    """Train ``cfg.method`` (``finetune``) on the labeled budget, keep the best on validation loss, score the test split.

    The test metrics (every process's samples) go to ``run_dir/test_metrics.json`` and the logger.
    """
    with _run(cfg) as (run_dir, datamodule, method, trainer, checkpoint):
        datamodule.setup("fit")
        train = datamodule.train_dataloader() if cfg.data.label_budget is None else datamodule.labeled_dataloader()
        trainer.fit(method, train_dataloaders=train, val_dataloaders=datamodule.val_dataloader())
        best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
        validation = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if best is not None:
            scored = trainer.validate(method, dataloaders=datamodule.val_dataloader(), ckpt_path=str(best), verbose=False)
            validation.update(scored[0] if scored else {})
        test = whole_split(datamodule.test_dataloader() if datamodule.test_dataset is not None else datamodule.val_dataloader(), trainer)
        if datamodule.test_dataset is None:
            log.warning("data %s has no test split: the reported metrics are on the validation split", cfg.data.name)
        results = trainer.test(method, dataloaders=test, ckpt_path=str(best) if best else None, verbose=False)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if trainer.is_global_zero:
            record = {"init": method.init_report, "label_budget": cfg.data.label_budget, "metrics": metrics}
            (run_dir / TEST_METRICS).write_text(json.dumps(record, indent=2, default=str))
        return FinetuneResult(run_dir, best, method.init_report, metrics, validation)
