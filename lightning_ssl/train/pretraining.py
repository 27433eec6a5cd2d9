"""Pretraining: train a method on a dataset, keep its checkpoints, publish its encoder/decoder to the zoo."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lightning_ssl import zoo
from lightning_ssl.config import registered
from lightning_ssl.errors import ConfigError
from lightning_ssl.train.folders import ResumeTarget
from lightning_ssl.train.run import open_run, wandb_logger
from lightning_ssl.zoo.store import METADATA_FILE, validate_name

log = logging.getLogger(__name__)


@dataclass
class PretrainResult:
    """Where a pretraining run wrote its outputs, and its last logged metrics (``validation``: what a sweep chooses on)."""

    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    zoo_entry: Path | None
    metrics: dict[str, float]

    @property
    def validation(self) -> dict[str, float]:
        """The metrics a hyper-parameter search may choose on."""
        return self.metrics


def check_pretraining(cfg: DictConfig) -> str:
    """The zoo name the run will publish under; ConfigError for settings the method would silently ignore."""
    method = registered("method", cfg.method.name)
    if cfg.data.get("label_budget") is not None and method.training_data == "all":
        raise ConfigError(
            f"data.label_budget={cfg.data.label_budget} is unused: {cfg.method.name} pretrains on every training image "
            "without labels; label budgets are read by finetune and the semi-supervised methods (cpcseg, multimix)"
        )
    name = cfg.zoo.name or cfg.run_name
    if cfg.zoo.publish:
        try:
            validate_name(name)
        except ValueError as error:
            raise ConfigError(f"{error} (set zoo.name=..., or run_name=..., before training starts)") from None
    return name


def log_zoo_artifact(run: Any, entry: Path, name: str) -> None:
    """Upload a published zoo entry (weights, metadata, card) to ``run`` as a W&B model artifact."""
    import wandb

    metadata = json.loads((entry / METADATA_FILE).read_text())
    artifact = wandb.Artifact(name, type="model", description=f"lightning-ssl zoo entry {name} {entry.name}", metadata=metadata)
    artifact.add_dir(str(entry))
    run.log_artifact(artifact, aliases=["latest", entry.name])


def pretrain(cfg: DictConfig, resume: ResumeTarget | None = None) -> PretrainResult:
    """Pretrain ``cfg.method`` on ``cfg.data`` (continuing ``resume`` when given) and publish the encoder/decoder
    to the zoo (main process only)."""
    zoo_name = check_pretraining(cfg)
    with open_run(cfg, resume, monitor=registered("method", cfg.method.name).monitored(cfg.method)) as run:
        trainer = run.trainer
        trainer.fit(run.method, datamodule=run.datamodule, **run.fit_arguments())
        # last.ckpt is written every few steps and at validations; write it at the very end too
        trainer.save_checkpoint(run.last_checkpoint, weights_only=False)  # the whole state (optimiser, loops), to resume
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        source = run.best_or_last()
        entry = None
        if trainer.is_global_zero and cfg.zoo.publish and source is not None:
            entry = zoo.publish(source, zoo_name, store=cfg.zoo.store)
            log.info("published %s to the zoo at %s", zoo_name, entry)
            logger = wandb_logger(trainer)
            if logger is not None and not logger.experiment.offline:
                log_zoo_artifact(logger.experiment, entry, zoo_name)
        best = Path(run.best.best_model_path) if run.best.best_model_path else None
        return PretrainResult(run.directory, best, run.last_checkpoint, entry, metrics)
