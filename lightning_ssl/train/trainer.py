"""The Lightning Trainer of a run: checkpoints (best on validation, last every few steps), loggers, callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from lightning_ssl.errors import ConfigError, one_line
from lightning_ssl.schema import plain
from lightning_ssl.train.callbacks import RandomStates, ResumePosition, StopOnSigterm, ValidateAtLastStep
from lightning_ssl.train.folders import CHECKPOINT_DIR, LAST_CHECKPOINT
from lightning_ssl.train.images import ImageLogging


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """The configured logger, writing inside the run folder (a new version folder per resumed attempt)."""
    if cfg.logger == "none":
        return []
    if cfg.logger == "csv":
        return [CSVLogger(save_dir=str(run_dir), name="logs")]
    if cfg.logger == "tensorboard":
        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard")]
    from pytorch_lightning.loggers import WandbLogger

    settings = {k: v for k, v in plain(cfg.wandb).items() if v not in (None, [])}
    return [WandbLogger(save_dir=str(run_dir), name=cfg.run_name, config=plain(cfg), **settings)]


def build_trainer(
    cfg: DictConfig, run_dir: Path, datamodule: Any = None, monitor: str = "val/loss", mode: str = "min"
) -> tuple[pl.Trainer, ModelCheckpoint]:
    """A Trainer with the best checkpoint on ``monitor``, ``last.ckpt`` every ``checkpoint.every_n_steps`` steps and at
    every validation, random states in checkpoints, a clean stop on SIGTERM, a validation after the last step, LR
    monitor, image logging (the method's preview every ``method.log_images_every_n_epochs`` epochs), progress bar and
    loggers.

    ``datamodule``: its training samplers learn where a resumed epoch stopped. Every process reads its own share of
    the data from the DataModule's samplers, so Lightning's distributed sampler is off.
    """
    # both checkpoints write the same last.ckpt (no last-v1.ckpt): the newest state wins
    folder = str(run_dir / CHECKPOINT_DIR)
    best = ModelCheckpoint(
        dirpath=folder, filename="best-{epoch}-{step}", monitor=monitor, mode=mode, save_top_k=1, save_last=True, enable_version_counter=False
    )
    callbacks: list[pl.Callback] = [best, RandomStates(), StopOnSigterm(run_dir / LAST_CHECKPOINT), ValidateAtLastStep()]
    if cfg.checkpoint.every_n_steps > 0:
        callbacks.append(
            ModelCheckpoint(
                dirpath=folder, save_top_k=0, save_last=True, every_n_train_steps=cfg.checkpoint.every_n_steps, enable_version_counter=False
            )
        )
    if datamodule is not None:
        callbacks.append(ResumePosition(datamodule))
    loggers = build_loggers(cfg, run_dir)
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
        if cfg.method.log_images_every_n_epochs > 0:
            callbacks.append(ImageLogging(cfg.method.log_images_every_n_epochs))
    if cfg.early_stopping.patience > 0:
        # strict=False: a run stopped by max_steps before its first validation has no metric to check yet
        callbacks.append(EarlyStopping(monitor=cfg.early_stopping.monitor, patience=cfg.early_stopping.patience, mode="min", strict=False))
    try:
        trainer = pl.Trainer(
            default_root_dir=str(run_dir), logger=loggers or False, callbacks=callbacks, use_distributed_sampler=False, **plain(cfg.trainer)
        )
    except (ValueError, TypeError) as error:  # Lightning refuses a setting (MisconfigurationException is a ValueError)
        raise ConfigError(f"trainer.*: {one_line(error)}") from None
    return trainer, best
