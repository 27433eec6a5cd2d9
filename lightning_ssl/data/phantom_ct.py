"""The embedded default data: procedural chest-CT phantoms, no download.

Phantoms are for trying the pipeline end to end, not for publishing results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lightning_ssl.data.base import BaseDataModule, DataInfo, ct_info
from lightning_ssl.data.intensity import window_hu
from lightning_ssl.data.patches import PatchDataset, Volume
from lightning_ssl.data.phantoms import chest_ct_phantom, patient_numbers
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import DataConfig


@dataclass
class PhantomCTConfig(DataConfig):
    """Chest-CT phantoms in HU, one volume per patient, served as cubes or 2D slice patches."""

    name: str = "phantom_ct"
    num_patients: int = 12
    volume_shape: list[int] = field(default_factory=lambda: [128, 128, 64])
    patches_per_volume: int = 16
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    hu_window: list[float] = field(default_factory=lambda: [-1000.0, 1000.0])
    nodule_probability: float = 0.5


@DATASETS.register("phantom_ct")
class PhantomCTDataModule(BaseDataModule):
    """Cubes (64x64x32 default) or slice patches of chest-CT phantoms; ``label`` = nodule in the patch,
    ``mask`` = lung mask, ``patient_id`` = phantom number."""

    Config = PhantomCTConfig

    @property
    def info(self) -> DataInfo:
        """One CT channel, HU window scaled to [0, 1]; nodule labels."""
        return ct_info(self.config, "CT (synthetic phantom)", num_classes=2, class_names=["no nodule", "nodule"])

    def _volume(self, number: int) -> Volume:
        phantom = chest_ct_phantom(number, tuple(self.config.volume_shape), self.config.nodule_probability)
        return Volume(
            patient_id=phantom.patient_id,
            image=window_hu(phantom.hu, self.config.hu_window)[None],
            body=phantom.body_mask,
            mask=phantom.lung_mask.astype("uint8")[None],
            targets=np.argwhere(phantom.nodule_mask),
        )

    def make_splits(self) -> dict[str, PatchDataset | None]:
        """Generate the phantoms (deterministic) and split them by patient."""
        cfg = self.config
        splits = self.split(list(patient_numbers(cfg.split_seed, cfg.num_patients)), cfg.val_fraction, cfg.test_fraction)
        return {
            name: PatchDataset(
                [self._volume(n) for n in numbers], cfg.patch_size, cfg.patches_per_volume, random=name == "train",
                seed=cfg.split_seed, labelled=True,
            )
            if numbers
            else None
            for name, numbers in splits.items()
        }
