"""The structured configs every part shares: a run, its optimiser and trainer, and the base of every method's and
dataset's config; the data's description (``DataInfo``) that methods and the zoo read.

Each method, dataset and network keeps its own ``Config`` beside its class; this module imports nothing from the
project but its errors, so any module may import it. Choices are Enums: OmegaConf refuses any other value when the config is merged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from lightning_ssl.errors import ConfigError

__all__ = ["ConfigError"]


class Choice(str, Enum):
    """A config choice: compares equal to its name (``Optimizer.adam == "adam"``) and prints as it."""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)


def plain(config: DictConfig | ListConfig | Any) -> Any:
    """A config as plain Python values (Enums as their names): what checkpoints and JSON files hold."""
    if isinstance(config, (DictConfig, ListConfig)):
        return OmegaConf.to_container(config, resolve=True, enum_to_str=True)
    return config


class Optimizer(Choice):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class Scheduler(Choice):
    none = "none"
    step = "step"
    cosine = "cosine"


class LoggerName(Choice):
    csv = "csv"
    tensorboard = "tensorboard"
    wandb = "wandb"
    none = "none"


class Cache(Choice):
    none = "none"
    memory = "memory"
    disk = "disk"


@dataclass
class MethodConfig:
    """Fields every method has.

    ``online_probe``: when the data has class labels, train a linear classifier on the detached pooled encoder
    features (its own learning rate ``probe_lr``) and log its validation accuracy.
    ``log_images_every_n_epochs``: how often the method's preview of the first validation batch is logged (0: never).
    """

    name: str = "???"
    log_images_every_n_epochs: int = 1
    online_probe: bool = True
    probe_lr: float = 0.01


@dataclass
class DataConfig:
    """Fields every dataset has.

    ``seed``: draws the label budget, the training order and the random training patches; ``split_seed``: draws the
    train/val/test split of data without an official one, the fixed validation/test patches and which phantoms are
    made, independent of ``seed``, so every budget and initialisation seed sees the same test images. ``label_budget``: how many training labels to keep (None or
    "all", a fraction in (0, 1] such as 0.1, a percentage "10%", or a count such as 100), stratified by class and
    nested across budgets for one ``seed``; the rest of the training split is the unlabeled pool.
    """

    name: str = "???"
    spatial_dims: int = 3
    patch_size: list[int] = field(default_factory=lambda: [64, 64, 32])
    batch_size: int = 6
    num_workers: int = 0
    seed: int = 0
    split_seed: int = 0
    label_budget: Any = None


@dataclass
class FolderDataConfig(DataConfig):
    """A dataset read from files under ``root``, optionally cached: ``cache`` none, memory (``cache_rate`` of the
    items kept in RAM) or disk (in ``cache_dir``, reused by later runs).

    ``verify``: at setup, read every file cheaply (headers, a reduced decode, mask and label values) and stop before
    training with one line per bad file; files that passed are recorded (in ``cache_dir``, else
    ``~/.cache/lightning_ssl``) and not read again while unchanged. false skips the pass: a bad file then stops
    training when it is first read."""

    root: Optional[str] = None
    cache: Cache = Cache.none
    cache_rate: float = 1.0
    cache_dir: Optional[str] = None
    verify: bool = True


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule: ``warmup_steps`` of linear warm-up, then ``scheduler``.

    ``encoder_lr_scale``: the encoder's learning rate is ``lr`` times this (e.g. 0.1 to fine-tune pretrained layers
    gently while a new head learns at ``lr``).
    """

    name: Optimizer = Optimizer.adam
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: Scheduler = Scheduler.none
    step_size: int = 10
    gamma: float = 0.5
    warmup_steps: int = 0
    encoder_lr_scale: float = 1.0


@dataclass
class TrainerConfig:
    """Arguments of ``pytorch_lightning.Trainer``; ``max_time`` ("DD:HH:MM:SS") stops a run after that long."""

    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int = 10
    max_steps: int = -1
    max_time: Optional[str] = None
    gradient_clip_val: Optional[float] = None
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    check_val_every_n_epoch: Optional[int] = 1
    val_check_interval: Optional[Any] = None
    num_sanity_val_steps: int = 2
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    enable_progress_bar: bool = True
    deterministic: bool = False
    sync_batchnorm: bool = False


@dataclass
class CheckpointConfig:
    """When ``last.ckpt`` is written besides every validation: every ``every_n_steps`` optimiser steps (0: never)."""

    every_n_steps: int = 50


@dataclass
class EarlyStoppingConfig:
    """Stop when the monitored validation metric stops improving (``patience=0`` turns it off)."""

    monitor: str = "val/loss"
    patience: int = 0


@dataclass
class WandbConfig:
    """Weights & Biases logger settings (``logger=wandb``)."""

    project: str = "lightning-ssl"
    entity: Optional[str] = None
    mode: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ZooConfig:
    """Publishing the pretrained encoder/decoder at the end of a run, and the store runs read and write."""

    publish: bool = True
    name: Optional[str] = None
    store: Optional[str] = None


@dataclass
class RunConfig:
    """A whole run: method, data, network, optimiser, trainer, checkpoints, logging, zoo."""

    method: Any = None
    data: Any = None
    network: Any = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    logger: LoggerName = LoggerName.csv
    wandb: WandbConfig = field(default_factory=WandbConfig)
    zoo: ZooConfig = field(default_factory=ZooConfig)
    seed: int = 42
    output_dir: str = "runs"
    run_name: Optional[str] = None
    resume: Optional[str] = None


@dataclass
class DataInfo:
    """What a model needs to know about the data: the input contract published with the weights."""

    spatial_dims: int
    in_channels: int
    channel_names: list[str]
    patch_size: list[int]
    intensity: str
    modality: str
    spacing: list[float] | None = None
    axes: str = "X,Y,Z"
    num_classes: int | None = None
    class_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (stored in checkpoints and zoo metadata)."""
        return asdict(self)
