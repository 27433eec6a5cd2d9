"""Run by test_byol.py: BYOL on two gloo ranks (Lightning DDP); each rank saves its target networks' parameters.

Parameters, not buffers: BatchNorm running statistics are per rank on CPU (SyncBatchNorm needs GPUs)
and are not used in training mode; the EMA acts on the parameters.

Usage: python ddp_byol_worker.py OUTPUT_DIR [config overrides...]. Lightning relaunches this script
for rank 1 with the same arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods import METHODS


class SaveTargets(pl.Callback):
    """Save the target encoder and projector of this rank when training ends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        state = {f"encoder.{k}": v.detach() for k, v in module.target_encoder.named_parameters()}
        state.update({f"projector.{k}": v.detach() for k, v in module.target_projector.named_parameters()})
        state["online.encoder"] = torch.cat([p.detach().flatten() for p in module.network.encoder.parameters()])
        torch.save(state, self.folder / f"targets_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    cfg = build_config(["method=byol", *sys.argv[2:]])
    pl.seed_everything(cfg.seed)
    datamodule = DATASETS[cfg.data.name](cfg.data)
    method = METHODS["byol"](OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=cfg.trainer.max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[SaveTargets(folder)],
    )
    trainer.fit(method, datamodule=datamodule)
