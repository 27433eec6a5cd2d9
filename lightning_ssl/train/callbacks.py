"""Callbacks that make a run stoppable and resumable exactly: random states in checkpoints, the data position of an
interrupted epoch, and a clean stop on SIGTERM."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class TrainingStopped(Exception):
    """A run that stopped on a signal after saving ``last.ckpt``; ``resume=last`` continues it."""


def capture_random_states() -> dict[str, Any]:
    """torch (CPU and CUDA), NumPy and Python random states as tensors, lists and numbers (a weights-only load reads them)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }


def restore_random_states(states: dict[str, Any]) -> None:
    """Set the random states that :func:`capture_random_states` returned."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


class RandomStates(pl.Callback):
    """Keeps the random states in every checkpoint; a resumed run restores them just before its first training step,
    so corruptions, views and dropout continue as in the uninterrupted run (rather than from a re-seeded state)."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The random states at the moment the checkpoint is written."""
        return capture_random_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the states to restore at the first training step."""
        self._pending = state_dict

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        """Restore the checkpoint's random states once, right before the first step after resuming."""
        if self._pending is not None:
            restore_random_states(self._pending)
            self._pending = None


class ResumePosition(pl.Callback):
    """On resume, tells the DataModule's training samplers how many batches of the interrupted epoch were done, so
    the epoch continues with the batches the uninterrupted run would have read next."""

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        """Read from the checkpoint's loop state the epoch and how many of its batches were trained; a checkpoint
        written on an epoch's last batch continues with the next epoch.

        The epoch in progress is the count of completed epochs: Lightning counts an epoch as processed before its
        closing validation (where the epoch-end checkpoint is written) and as completed only after it."""
        fit = checkpoint.get("loops", {}).get("fit_loop", {})
        batches = fit.get("epoch_loop.batch_progress", {})
        epoch = int(fit.get("epoch_progress", {}).get("current", {}).get("completed", checkpoint.get("epoch", 0)))
        done = int(batches.get("current", {}).get("processed", 0))
        if batches.get("is_last_batch"):
            epoch, done = epoch + 1, 0
        self.datamodule.resume_at(epoch, done)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The training loaders exist now: loaders made later (a new epoch's) start at their beginning."""
        self.datamodule.resume_position = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Give the training samplers the epoch Lightning counts (``current_epoch``), just before they are iterated.

        Lightning hands samplers its count of processed epochs, which a run resumed from an epoch-end checkpoint
        counts twice (the restored epoch is processed again), so the resumed run would shuffle as one epoch later.
        """
        for sampler in self.datamodule.train_samplers:
            sampler.sampler.set_epoch(trainer.current_epoch)


class StopOnSigterm(pl.Callback):
    """On SIGTERM (a scheduler's preemption, ``docker stop``, ``kill``), save ``last.ckpt`` at the end of the current
    step and stop with :class:`TrainingStopped`; every process stops together."""

    def __init__(self, last_checkpoint: Path) -> None:
        self.last_checkpoint = last_checkpoint
        self.saved = False

    def _requested(self, trainer: pl.Trainer) -> bool:
        flag = torch.tensor([int(bool(trainer.received_sigterm))])
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def _save(self, trainer: pl.Trainer) -> None:
        """Write the whole state (optimiser, loops) to resume. Lightning stops on SIGTERM itself after counting an
        epoch as completed, a state it resumes with an empty epoch; such a save is written as Lightning's own
        epoch-end checkpoint is, with the epoch processed but not yet completed."""
        progress = trainer.fit_loop.epoch_progress
        finished = 0 < progress.current.started == progress.current.completed
        if finished:
            progress.current.completed -= 1
            progress.total.completed -= 1
        try:
            trainer.save_checkpoint(self.last_checkpoint, weights_only=False)
        finally:
            if finished:
                progress.current.completed += 1
                progress.total.completed += 1
        self.saved = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Save and stop when any process received SIGTERM."""
        if self._requested(trainer):
            self._save(trainer)
            raise TrainingStopped(f"stopped by SIGTERM after step {trainer.global_step}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """SIGTERM met outside a training step (Lightning stopped during a validation or at an epoch's end): save there."""
        if isinstance(exception, SIGTERMException) and not self.saved:
            self._save(trainer)
            exception.args = (f"stopped by SIGTERM after step {trainer.global_step}",)  # what the command line prints


class ValidateAtLastStep(pl.Callback):
    """Validate after the step that reaches ``trainer.max_steps`` even when it falls between validations, so every run
    ends with validation metrics (what a sweep chooses on) and a best checkpoint of its final weights."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Ask Lightning to stop after this step when it is the last: a stopping loop validates before it ends."""
        if 0 <= trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True
