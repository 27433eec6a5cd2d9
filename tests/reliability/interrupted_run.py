"""Run by the reliability tests: the CLI, stopped hard at a chosen step to stand for ``kill -9`` or a crash.

Usage: python interrupted_run.py STEP COMMAND [overrides...]. The process SIGKILLs itself when training step STEP
starts (nothing is saved at that moment); with STEP < 0 it is the plain CLI. In a multi-process run, the environment
variable KILL_RANK=k kills only process k (the others run on, as after a lost node).
"""

from __future__ import annotations

import os
import signal
import sys

import pytorch_lightning as pl

import lightning_ssl.train.run as run_module
from lightning_ssl.cli import main


class KillAt(pl.Callback):
    """SIGKILL this process when training step ``step`` starts (only process ``rank`` when one is given)."""

    def __init__(self, step: int, rank: int | None) -> None:
        self.step = step
        self.rank = rank

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if 0 <= self.step <= trainer.global_step and self.rank in (None, trainer.global_rank):
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    step = int(sys.argv[1])
    build = run_module.build_trainer

    def with_kill(*args: object, **kwargs: object):
        trainer, best = build(*args, **kwargs)
        rank = os.environ.get("KILL_RANK")
        trainer.callbacks.append(KillAt(step, None if rank is None else int(rank)))
        return trainer, best

    run_module.build_trainer = with_kill
    sys.exit(main(sys.argv[2:]))
