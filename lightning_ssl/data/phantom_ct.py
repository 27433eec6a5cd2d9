"""The embedded default data: procedural chest-CT phantoms, no download.

Phantoms are for trying the pipeline end to end, not for publishing results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lightning_ssl.data.base import BaseDataModule, DataInfo, ct_info, split_patients
from lightning_ssl.data.intensity import window_hu
from lightning_ssl.data.patches import PatchDataset, Volume
from lightning_ssl.data.phantoms import chest_ct_phantom
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

    def setup(self, stage: str | None = None) -> None:
        """Generate the phantoms (deterministic) and split them by patient."""
        if self.train_dataset is not None:
            return
        cfg = self.config
        numbers = list(range(cfg.split_seed * 10_000, cfg.split_seed * 10_000 + cfg.num_patients))
        ids = {str(n): n for n in numbers}
        splits = split_patients(list(ids), cfg.val_fraction, cfg.test_fraction, cfg.split_seed)

        def make(split: str, random: bool) -> PatchDataset:
            volumes = [self._volume(ids[p]) for p in splits[split]]
            return PatchDataset(volumes, cfg.patch_size, cfg.patches_per_volume, random=random, seed=cfg.split_seed, labelled=True)

        self.train_dataset = make("train", True)
        self.val_dataset = make("val", False)
        if splits["test"]:
            self.test_dataset = make("test", False)
