"""``resume=...``: the run it continues, that run's saved config under the new overrides, and whether anything is
left to train."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from lightning_ssl.config import build_config
from lightning_ssl.errors import ConfigError
from lightning_ssl.io.checkpoint import UnsafeCheckpointError, load_lightning_checkpoint
from lightning_ssl.train.folders import ResumeTarget, find_resume

log = logging.getLogger(__name__)


def resumed_config(
    cfg: DictConfig, overrides: list[str], defaults: dict[str, str] | None = None, trains: bool = True
) -> tuple[DictConfig, ResumeTarget | None]:
    """The config to run and the checkpoint to restore: without ``resume``, ``cfg`` itself; with it, the resumed run's
    saved config with ``overrides`` on top, after checking its checkpoint can be read safely and (when it ``trains``
    on) has steps left."""
    if not cfg.resume:
        return cfg, None
    target = find_resume(cfg.output_dir, cfg.run_name, str(cfg.resume))
    if target.config_file is not None:
        cfg = build_config([f"config={target.config_file}", *overrides], defaults)
    try:
        checkpoint = load_lightning_checkpoint(target.checkpoint)
    except (UnsafeCheckpointError, FileNotFoundError) as error:
        raise ConfigError(f"resume={cfg.resume}: {error}") from None
    if trains:
        _check_steps_left(cfg, target, checkpoint)
    log.info("resuming %s from %s (step %s)", target.run_dir, target.checkpoint.name, checkpoint.get("global_step"))
    return cfg, target


def trained_so_far(checkpoint: Mapping[str, Any]) -> tuple[int, int]:
    """(optimiser steps, completed epochs) recorded in a Lightning checkpoint."""
    epochs = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {}).get("completed")
    return int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", 0) if epochs is None else epochs)


def _check_steps_left(cfg: DictConfig, target: ResumeTarget, checkpoint: Mapping[str, Any]) -> None:
    """ConfigError when the resumed run already reached its step or epoch limit under the new config."""
    steps, epochs = trained_so_far(checkpoint)
    max_steps, max_epochs = int(cfg.trainer.max_steps), cfg.trainer.max_epochs
    done_steps = max_steps >= 0 and steps >= max_steps
    done_epochs = max_epochs is not None and max_epochs >= 0 and epochs >= max_epochs
    if done_steps or done_epochs:
        hint = f"trainer.max_steps={steps + max(steps // 2, 1)}" if done_steps else f"trainer.max_epochs={epochs + 1}"
        raise ConfigError(
            f"resume={cfg.resume}: the run in {target.run_dir} is complete ({steps} steps, {epochs} epochs; "
            f"trainer.max_steps={max_steps}, trainer.max_epochs={max_epochs}); to train longer, resume with a higher "
            f"limit, e.g. resume={cfg.resume} {hint}"
        )
