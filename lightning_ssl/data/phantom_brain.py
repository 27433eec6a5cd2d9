"""Embedded brain-MRI phantoms with BraTS tumour labels, no download: the default data of segmentation methods.

Phantoms are for trying the pipeline end to end, not for publishing results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lightning_ssl.data.base import BaseDataModule, DataInfo, check_patch_size, split_patients
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.intensity import intensity_of, normalise_mri
from lightning_ssl.data.patches import PatchDataset, TargetFraction, Volume
from lightning_ssl.data.phantoms import brain_mri_phantom, patient_numbers
from lightning_ssl.data.phantoms.brain_mri import FIELD_OF_VIEW_MM
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import ConfigError, DataConfig
from lightning_ssl.metrics.brats_labels import MODALITIES


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


class BrainVolume(Volume):
    """One phantom normalised to [0, 1] (``image``), its brain (``body``), canonical labels (``mask``) and tumour voxels
    (``targets``)."""

    @property
    def brain(self) -> np.ndarray:
        """The brain mask."""
        return self.body

    @property
    def has_tumour(self) -> bool:
        """Whether the volume holds any tumour voxel."""
        return bool(len(self.targets))


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

    def check_config(self) -> None:
        """A known MRI normalisation, a patch of spatial_dims values inside the volume, fractions in [0, 1]."""
        cfg = self.config
        intensity_of(cfg.mri_normalisation)
        check_patch_size(cfg)
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
            body=phantom.brain_mask,
            mask=phantom.labels[None],
            targets=np.argwhere(phantom.labels),
        )

    def make_splits(self) -> dict[str, PatchDataset | None]:
        """Generate the phantoms (deterministic) and split them by patient, tumours in every held-out split."""
        cfg = self.config
        volumes = {v.patient_id: v for v in map(self._volume, patient_numbers(cfg.split_seed, cfg.num_patients))}
        positions = TargetFraction(cfg.tumour_patch_fraction)
        return {
            name: PatchDataset(
                [volumes[p] for p in chosen], cfg.patch_size, cfg.patches_per_volume, positions, name == "train",
                cfg.split_seed, labelled=True,
            )
            if chosen
            else None
            for name, chosen in split_by_tumour(volumes, cfg.val_fraction, cfg.test_fraction, cfg.split_seed).items()
        }
