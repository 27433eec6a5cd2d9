"""Image logging of a run: the method's preview of the first validation batch, drawn and sent to every logger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger

from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.train.figures import describe_preview, render_preview

IMAGE_DIR = "images"


def save_png(image: np.ndarray, path: Path, title: str, caption: str) -> None:
    """Write ``image`` (H, W, 3) uint8 as a PNG whose Title and Description text fields hold ``title`` and ``caption``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_text("Title", title)
    info.add_text("Description", caption)
    Image.fromarray(image).save(path, pnginfo=info)


def log_picture(logger: Logger, tag: str, image: np.ndarray, caption: str, step: int, run_dir: Path) -> None:
    """Send ``image`` (H, W, 3) uint8 to ``logger``: TensorBoard's image plugin, a W&B image with its caption, else a
    PNG file ``images/<tag>_step<N>.png`` (caption in its Description field) under the logger's folder or the run's."""
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(tag, image, step, dataformats="HWC")
    elif isinstance(logger, WandbLogger):
        logger.log_image(key=tag, images=[image], step=step, caption=[caption])
    else:
        folder = Path(getattr(logger, "log_dir", None) or run_dir) / IMAGE_DIR
        save_png(image, folder / f"{tag.replace('/', '_')}_step{step:07d}.png", tag, caption)


class ImageLogging(pl.Callback):
    """Every ``every_n_epochs`` epochs (0: never), on the main process, draws the method's preview of the first batch
    of each validation loader and logs it through every logger of the trainer as ``val/<preview title>``."""

    def __init__(self, every_n_epochs: int, max_samples: int = 4) -> None:
        self.every_n_epochs = every_n_epochs
        self.max_samples = max_samples

    def _due(self, trainer: pl.Trainer, batch_idx: int) -> bool:
        every = self.every_n_epochs
        return bool(every) and batch_idx == 0 and trainer.current_epoch % every == 0 and trainer.is_global_zero

    @torch.no_grad()
    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: BaseMethod, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Log the preview of the first batch of each validation loader when due."""
        if not (trainer.loggers and self._due(trainer, batch_idx)):
            return
        preview = pl_module.preview(batch, dataloader_idx)
        if preview is None:
            return
        image = render_preview(preview, self.max_samples)
        caption = describe_preview(preview, self.max_samples)
        for logger in trainer.loggers:
            log_picture(logger, f"val/{preview.title}", image, caption, trainer.global_step, Path(trainer.default_root_dir))
