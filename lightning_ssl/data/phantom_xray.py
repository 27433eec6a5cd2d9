"""Embedded chest X-ray phantoms (normal / pneumonia, lung masks), no download: the default 2D classification data.

Phantoms are for trying the pipeline end to end, not for publishing results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_ssl.data.base import BaseDataModule, DataInfo, require_2d
from lightning_ssl.data.phantoms import ChestXRayPhantom, chest_xray_phantom, patient_numbers
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import ConfigError, DataConfig

CLASS_NAMES = ["normal", "pneumonia"]


@dataclass
class PhantomXRayConfig(DataConfig):
    """Chest X-ray phantoms rendered at ``patch_size`` once, at setup, and kept in memory; one image per patient.

    Each patient has pneumonia with probability ``pneumonia_fraction`` (drawn from ``split_seed`` and the patient).
    """

    name: str = "phantom_xray"
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [64, 64])
    batch_size: int = 32
    num_patients: int = 200
    pneumonia_fraction: float = 0.5
    val_fraction: float = 0.2
    test_fraction: float = 0.2


class XRayPhantoms(Dataset):
    """Phantoms as items ``image`` (1, H, W) float32 in [0, 1], ``label`` (int64), ``mask`` (1, H, W) uint8 lung
    mask and ``patient_id``."""

    def __init__(self, phantoms: Sequence[ChestXRayPhantom]) -> None:
        self.phantoms = list(phantoms)

    def __len__(self) -> int:
        return len(self.phantoms)

    def __getitem__(self, index: int) -> dict[str, Any]:
        phantom = self.phantoms[index]
        return {
            "image": torch.from_numpy(phantom.image)[None],
            "label": torch.tensor(phantom.label, dtype=torch.int64),
            "mask": torch.from_numpy(phantom.lung_mask)[None],
            "patient_id": phantom.patient_id,
        }

    def class_labels(self) -> list[int]:
        """The class of every item (0 normal, 1 pneumonia)."""
        return [p.label for p in self.phantoms]

    def column_values(self, column: str) -> list[str] | None:
        """The patient id of every item for ``patient_id``; None for any other column."""
        return [p.patient_id for p in self.phantoms] if column == "patient_id" else None


@DATASETS.register("phantom_xray")
class PhantomXRayDataModule(BaseDataModule):
    """Synthetic PA chest radiographs: ``label`` normal / pneumonia, ``mask`` = both lung fields; split by patient."""

    Config = PhantomXRayConfig

    @property
    def info(self) -> DataInfo:
        """One X-ray channel in [0, 1] (bright = dense) at ``patch_size``; normal / pneumonia classes."""
        return DataInfo(
            spatial_dims=2,
            in_channels=1,
            channel_names=["X-ray"],
            patch_size=list(self.config.patch_size),
            intensity="synthetic radiograph in [0, 1], dense tissue bright, rendered at patch_size",
            modality="X-ray (synthetic chest phantom)",
            axes="H,W",
            num_classes=len(CLASS_NAMES),
            class_names=list(CLASS_NAMES),
        )

    def check_config(self) -> None:
        """2D images, a pneumonia fraction in [0, 1]."""
        cfg = self.config
        require_2d(cfg)
        if not 0.0 <= cfg.pneumonia_fraction <= 1.0:
            raise ConfigError(f"data.pneumonia_fraction={cfg.pneumonia_fraction} must lie in [0, 1]")

    def _phantom(self, number: int) -> ChestXRayPhantom:
        cfg = self.config
        pneumonia = bool(np.random.default_rng([cfg.split_seed, number]).random() < cfg.pneumonia_fraction)
        try:
            return chest_xray_phantom(number, tuple(cfg.patch_size), pneumonia)
        except ValueError as error:
            raise ConfigError(f"data.patch_size={list(cfg.patch_size)}: {error}") from None

    def make_splits(self) -> dict[str, XRayPhantoms | None]:
        """Render the phantoms (deterministic) and split them by patient."""
        cfg = self.config
        phantoms = [self._phantom(n) for n in patient_numbers(cfg.split_seed, cfg.num_patients)]
        splits = self.split(phantoms, cfg.val_fraction, cfg.test_fraction, key=lambda p: p.patient_id)
        return {name: XRayPhantoms(chosen) if chosen else None for name, chosen in splits.items()}
