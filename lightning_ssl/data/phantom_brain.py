"""Embedded brain-MRI phantoms with BraTS tumour labels, no download: the default data of segmentation methods.

Phantoms are for trying the pipeline end to end, not for publishing results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_ssl.data.base import BaseDataModule, DataInfo, crop, sample_patch_origins, split_patients
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.intensity import intensity_of, normalise_mri
from lightning_ssl.data.phantoms import brain_mri_phantom
from lightning_ssl.data.phantoms.brain_mri import FIELD_OF_VIEW_MM
from lightning_ssl.data.sampling import item_rng
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import ConfigError, DataConfig
from lightning_ssl.transforms.brats_labels import MODALITIES


@dataclass
class PhantomBrainMRIConfig(DataConfig):
    """Brain-MRI phantoms, one 4-channel volume per patient, served as cubes or axial slice patches.

    ``tumour_patch_fraction`` of the patches of a volume with a tumour are centred on a tumour voxel,
    the others anywhere in the brain.
    """

    name: str = "phantom_brain_mri"
    batch_size: int = 4
    num_patients: int = 12
    volume_shape: list[int] = field(default_factory=lambda: [96, 96, 64])
    patches_per_volume: int = 16
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    tumour_probability: float = 0.8
    tumour_patch_fraction: float = 0.5
    mri_normalisation: str = "zscore"


@dataclass
class BrainVolume:
    """One phantom normalised to [0, 1], with its brain mask, canonical labels and tumour voxels (flat indices)."""

    patient_id: str
    image: np.ndarray
    brain: np.ndarray
    labels: np.ndarray
    tumour: np.ndarray

    @property
    def has_tumour(self) -> bool:
        """Whether the volume holds any tumour voxel."""
        return bool(self.tumour.size)


class BrainPatches(Dataset):
    """``patches_per_volume`` patches per volume: random per access (``random``), or fixed by ``seed``.

    A ``tumour_fraction`` of the patches of a volume with a tumour are centred on a tumour voxel, the others
    inside the brain. With ``spatial_dims=2`` a patch is a 2D patch of one axial slice. Items: ``image``
    (4, *patch), ``mask`` (1, *patch) canonical BraTS labels, ``label`` (tumour in the patch), ``patient_id``.
    """

    def __init__(
        self,
        volumes: Sequence[BrainVolume],
        patch_size: Sequence[int],
        patches_per_volume: int,
        random: bool,
        seed: int,
        tumour_fraction: float,
    ) -> None:
        self.volumes = list(volumes)
        self.spatial_dims = len(patch_size)
        self.patch_size = np.array([int(s) for s in patch_size] + [1] * (3 - len(patch_size)))
        self.patches_per_volume = patches_per_volume
        self.tumour_fraction = tumour_fraction
        self.fixed_origins = None if random else [self._origin(i, np.random.default_rng([seed, i])) for i in range(len(self))]

    def __len__(self) -> int:
        return len(self.volumes) * self.patches_per_volume

    def _volume(self, index: int) -> BrainVolume:
        return self.volumes[index // self.patches_per_volume]

    def _origin(self, index: int, rng: np.random.Generator) -> np.ndarray:
        volume = self._volume(index)
        if volume.has_tumour and rng.random() < self.tumour_fraction:
            centre = np.array(np.unravel_index(volume.tumour[rng.integers(volume.tumour.size)], volume.brain.shape))
            return np.clip(centre - self.patch_size // 2, 0, np.array(volume.brain.shape) - self.patch_size)
        return sample_patch_origins(volume.brain, self.patch_size, 1, rng)[0]

    def _crop(self, array: np.ndarray, origin: np.ndarray) -> np.ndarray:
        patch = crop(array, origin, self.patch_size)
        return np.ascontiguousarray(patch[..., 0] if self.spatial_dims == 2 else patch)

    def class_labels(self) -> list[int]:
        """Tumour in the patch for fixed patches; for random ones, whether the patch's volume has a tumour."""
        if self.fixed_origins is None:
            return [int(self._volume(i).has_tumour) for i in range(len(self))]
        return [int(self._crop(self._volume(i).labels, o).any()) for i, o in enumerate(self.fixed_origins)]

    def column_values(self, column: str) -> list[str] | None:
        """The patient id of every item for ``patient_id``; None for any other column."""
        return [self._volume(i).patient_id for i in range(len(self))] if column == "patient_id" else None

    def __getitem__(self, index: int) -> dict[str, Any]:
        volume = self._volume(index)
        if self.fixed_origins is None:
            origin = self._origin(index, item_rng(index))
        else:
            origin = self.fixed_origins[index]
        mask = torch.from_numpy(self._crop(volume.labels, origin))[None]
        return {
            "image": torch.from_numpy(self._crop(volume.image, origin)),
            "mask": mask,
            "label": torch.tensor(int(mask.any()), dtype=torch.int64),
            "patient_id": volume.patient_id,
        }


def split_by_tumour(
    volumes: dict[str, BrainVolume], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Patient splits of the sizes ``split_patients`` gives, deterministic by ``seed``, in which validation and test hold
    healthy patients in proportion rounded down, so that each holds a patient with a tumour whenever enough have one."""
    sizes = {name: len(chosen) for name, chosen in split_patients(list(volumes), val_fraction, test_fraction, seed).items()}
    shuffled = np.random.default_rng(seed).permutation(sorted(volumes)).tolist()
    tumour = [p for p in shuffled if volumes[p].has_tumour]
    healthy = [p for p in shuffled if not volumes[p].has_tumour]
    fraction_healthy = len(healthy) / len(volumes)
    splits = {}
    for name in ("val", "test"):
        count = max(sizes[name] - len(tumour), int(sizes[name] * fraction_healthy))
        splits[name] = tumour[: sizes[name] - count] + healthy[:count]
        del tumour[: sizes[name] - count], healthy[:count]
    return {**splits, "train": tumour + healthy}


@DATASETS.register("phantom_brain_mri")
class PhantomBrainMRIDataModule(BaseDataModule):
    """Cubes (64x64x32 default) or axial slice patches of brain-MRI phantoms (t1, t1ce, t2, flair): ``mask`` =
    canonical BraTS labels, ``label`` = tumour in the patch, ``patient_id`` = phantom number; split by patient,
    held-out patients chosen so that validation and test hold tumours."""

    Config = PhantomBrainMRIConfig

    @property
    def info(self) -> DataInfo:
        """Four MRI channels normalised over the brain to [0, 1]; tumour / no-tumour patch classes."""
        cfg = self.config
        spacing = FIELD_OF_VIEW_MM / np.array(cfg.volume_shape, dtype=float)
        return DataInfo(
            spatial_dims=cfg.spatial_dims,
            in_channels=len(MODALITIES),
            channel_names=list(MODALITIES),
            patch_size=list(cfg.patch_size),
            intensity=intensity_of(cfg.mri_normalisation),
            modality="MRI (synthetic brain phantom)",
            spacing=spacing[: cfg.spatial_dims].tolist(),
            axes="X,Y,Z" if cfg.spatial_dims == 3 else "X,Y (axial slices)",
            num_classes=2,
            class_names=["no tumour", "tumour"],
        )

    def _check_config(self) -> None:
        cfg = self.config
        intensity_of(cfg.mri_normalisation)
        if cfg.spatial_dims not in (2, 3) or len(cfg.patch_size) != cfg.spatial_dims:
            raise ConfigError(f"data.patch_size={list(cfg.patch_size)} needs {cfg.spatial_dims} values for data.spatial_dims")
        if any(p > s for p, s in zip(cfg.patch_size, cfg.volume_shape)):
            raise DataError(f"data.patch_size={list(cfg.patch_size)} is larger than data.volume_shape={list(cfg.volume_shape)}")
        for name in ("tumour_probability", "tumour_patch_fraction"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise ConfigError(f"data.{name}={getattr(cfg, name)} must lie in [0, 1]")

    def _volume(self, number: int) -> BrainVolume:
        cfg = self.config
        try:
            phantom = brain_mri_phantom(number, tuple(cfg.volume_shape), cfg.tumour_probability)
        except ValueError as error:
            raise ConfigError(f"data.volume_shape={list(cfg.volume_shape)}: {error}") from None
        return BrainVolume(
            patient_id=phantom.patient_id,
            image=normalise_mri(phantom.image, cfg.mri_normalisation),
            brain=phantom.brain_mask,
            labels=phantom.labels,
            tumour=np.flatnonzero(phantom.labels),
        )

    def setup(self, stage: str | None = None) -> None:
        """Generate the phantoms (deterministic) and split them by patient."""
        if self.train_dataset is not None:
            return
        self._check_config()
        cfg = self.config
        volumes = {v.patient_id: v for v in map(self._volume, range(cfg.split_seed * 10_000, cfg.split_seed * 10_000 + cfg.num_patients))}
        splits = split_by_tumour(volumes, cfg.val_fraction, cfg.test_fraction, cfg.split_seed)

        def make(split: str, random: bool) -> BrainPatches | None:
            chosen = [volumes[p] for p in splits[split]]
            if not chosen:
                return None
            return BrainPatches(chosen, cfg.patch_size, cfg.patches_per_volume, random, cfg.split_seed, cfg.tumour_patch_fraction)

        self.train_dataset = make("train", True)
        self.val_dataset = make("val", False)
        self.test_dataset = make("test", False)
