"""Running a config: pretraining (then publishing to the zoo) and fine-tuning (then scoring the test split)."""

from lightning_ssl.train.callbacks import TrainingStopped
from lightning_ssl.train.finetuning import TEST_METRICS, FinetuneResult, finetune, score
from lightning_ssl.train.folders import CONFIG_FILE, LAST_CHECKPOINT, RUN_DIR_ENV, ResumeTarget, find_resume
from lightning_ssl.train.pretraining import PretrainResult, pretrain
from lightning_ssl.train.resume import resumed_config
from lightning_ssl.train.trainer import build_trainer

__all__ = [
    "CONFIG_FILE",
    "LAST_CHECKPOINT",
    "RUN_DIR_ENV",
    "TEST_METRICS",
    "FinetuneResult",
    "PretrainResult",
    "ResumeTarget",
    "TrainingStopped",
    "build_trainer",
    "find_resume",
    "finetune",
    "pretrain",
    "resumed_config",
    "score",
]
