"""Building a method from config overrides, and short real-data runs, for the method tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from real_data import shared_file

from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods import METHODS
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.schema import plain
from lightning_ssl.train import pretrain
from lightning_ssl.train.finetuning import load_pretrained, with_entry_network


def build_method(method: str, *overrides: str) -> BaseMethod:
    """``METHODS[method]`` for the config resolved from ``overrides`` (phantom data by default)."""
    cfg = build_config([f"method={method}", *overrides])
    info = DATASETS[cfg.data.name](cfg.data).info
    return METHODS[method](plain(cfg), info.as_dict())


def build_finetune(*overrides: str) -> tuple[BaseMethod, dict]:
    """A fine-tuning method built as a run builds it (the zoo entry's network and weights), and what was loaded."""
    cfg = build_config(["method=finetune", *overrides])
    datamodule = DATASETS[cfg.data.name](cfg.data)
    cfg = with_entry_network(cfg, datamodule)
    method = METHODS["finetune"](plain(cfg), datamodule.info.as_dict())
    return method, load_pretrained(method, cfg)


def small(spatial_dims: int) -> list[str]:
    """Overrides for a small 2D (32x32) or 3D (32x32x16) method with a tiny U-Net."""
    patch = "[32,32]" if spatial_dims == 2 else "[32,32,16]"
    return ["network.features=[4,8,16]", f"data.spatial_dims={spatial_dims}", f"data.patch_size={patch}"]


def pneumoniamnist_run(method: str, output_dir: Path, epochs: int, *overrides: str) -> tuple[list[dict[str, float]], float, Path]:
    """Pretrain ``method`` on the real PneumoniaMNIST (skips when absent) through the CLI's code path.

    Returns the validation metrics of each epoch, the majority-class share of the validation split,
    and the zoo entry the run published.
    """
    path = shared_file("pneumoniamnist/pneumoniamnist.npz")
    labels = np.load(path)["val_labels"].ravel()
    prior = float(np.bincount(labels).max() / labels.size)
    cfg = build_config(
        [
            f"method={method}",
            "data=pneumoniamnist",
            f"data.root={path.parent}",
            f"trainer.max_epochs={epochs}",
            "trainer.enable_progress_bar=false",
            f"output_dir={output_dir}",
            *overrides,
        ]
    )
    result = pretrain(cfg)
    rows = list(csv.DictReader((result.run_dir / "logs" / "version_0" / "metrics.csv").open()))
    per_epoch = [{k: float(v) for k, v in row.items() if k.startswith("val/") and v} for row in rows if row.get("val/loss")]
    return per_epoch, prior, result.zoo_entry


def train_one_step(method: BaseMethod, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one training step on ``images`` followed by one SGD step, and the parameters from before the step."""
    before = {name: parameter.detach().clone() for name, parameter in method.named_parameters()}
    loss = method.training_step({"image": images}, 0)
    loss.backward()
    torch.optim.SGD(method.parameters(), lr=0.1).step()
    return loss.detach(), before
