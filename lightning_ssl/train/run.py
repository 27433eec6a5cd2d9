"""One path from a resolved config to a ready run: folder, preflight checks, data, method, trainer, saved config."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_ssl.config import registered
from lightning_ssl.data.base import BaseDataModule
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.schema import plain
from lightning_ssl.train.folders import (
    CONFIG_FILE,
    LAST_CHECKPOINT,
    RUN_DIR_ENV,
    ResumeTarget,
    ensure_writable,
    inherited_run_dir,
    new_run_dir,
)
from lightning_ssl.train.trainer import build_trainer
from lightning_ssl.zoo.store import store_root

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything a run needs, built from its config: where it writes, its data, method and trainer."""

    cfg: DictConfig
    directory: Path
    datamodule: BaseDataModule
    method: BaseMethod
    trainer: pl.Trainer
    best: ModelCheckpoint
    resume: ResumeTarget | None

    @property
    def last_checkpoint(self) -> Path:
        """Where ``last.ckpt`` is written."""
        return self.directory / LAST_CHECKPOINT

    def fit_arguments(self) -> dict[str, Any]:
        """The ``ckpt_path`` of a resumed run; checkpoints are always read weights-only."""
        return {"ckpt_path": str(self.resume.checkpoint) if self.resume else None, "weights_only": True}

    def best_or_last(self) -> Path | None:
        """The best checkpoint on the monitored metric, else the last one, else None."""
        if self.best.best_model_path:
            return Path(self.best.best_model_path)
        return self.last_checkpoint if self.last_checkpoint.is_file() else None


def preflight(cfg: DictConfig, run_dir: Path) -> None:
    """Check, before anything trains, that every folder the run writes to can be written: one line each."""
    ensure_writable(run_dir, "output_dir")
    if cfg.zoo.publish and cfg.method.name != "finetune":
        ensure_writable(store_root(cfg.zoo.store), "zoo.store")
    if cfg.data.get("cache") == "disk" and cfg.data.get("cache_dir"):
        ensure_writable(cfg.data.cache_dir, "data.cache_dir")


@contextmanager
def open_run(
    cfg: DictConfig,
    resume: ResumeTarget | None = None,
    monitor: tuple[str, str] = ("val/loss", "min"),
    prepare: Callable[[DictConfig, BaseDataModule], DictConfig] | None = None,
) -> Iterator[Run]:
    """Seed, choose the run folder (shared with DDP ranks through the environment), check it and the other folders
    the run writes, build data, method and trainer, save the config; finish W&B and the process group afterwards.

    ``prepare(cfg, datamodule)`` may complete the config from the data before the method is built (fine-tuning reads
    its network from the zoo entry). ``monitor`` is the metric and mode of the best checkpoint.
    """
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = inherited_run_dir() or (resume.run_dir if resume else new_run_dir(cfg.output_dir, cfg.run_name))
    owns_env = RUN_DIR_ENV not in os.environ
    os.environ[RUN_DIR_ENV] = str(run_dir)
    trainer = None
    try:
        preflight(cfg, run_dir)
        datamodule = registered("data", cfg.data.name)(cfg.data)
        if prepare is not None:
            cfg = prepare(cfg, datamodule)
        method = registered("method", cfg.method.name)(plain(cfg), datamodule.info.as_dict())
        datamodule.training_data = method.training_data
        datamodule.evaluation_data = method.evaluation_data
        trainer, best = build_trainer(cfg, run_dir, datamodule, *monitor)
        if trainer.is_global_zero:
            OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
        yield Run(cfg, run_dir, datamodule, method, trainer, best, resume)
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


def wandb_logger(trainer: pl.Trainer | None) -> Any | None:
    """The trainer's W&B logger, if any (matched by name: wandb is an optional dependency)."""
    return next((each for each in (trainer.loggers if trainer else []) if type(each).__name__ == "WandbLogger"), None)


def _finish_wandb(trainer: pl.Trainer | None, exit_code: int) -> None:
    """End the W&B run this run started, so the next run in the same process (a sweep, a test) gets its own."""
    if wandb_logger(trainer) is None:
        return
    import wandb

    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)
