"""Patches taken inside the body of volumes held in memory: 3D cubes or 2D slice patches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_ssl.data.base import crop, sample_patch_origins
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.sampling import item_rng


@dataclass
class Volume:
    """One patient's volume, normalised to [0, 1], with its body mask and optional labels."""

    patient_id: str
    image: np.ndarray
    body: np.ndarray
    mask: np.ndarray | None = None
    label_mask: np.ndarray | None = None
    source: str | None = None


class PatchDataset(Dataset):
    """``patches_per_volume`` patches per volume, centred inside the body.

    With ``random=True`` every access draws a new patch position (training); otherwise the
    positions are fixed by ``seed`` (validation and test). For ``spatial_dims=2`` a patch is a
    2D patch of one axial slice. ``label`` is 1 when the patch holds any voxel of ``label_mask``.
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        patch_size: Sequence[int],
        patches_per_volume: int,
        spatial_dims: int = 3,
        random: bool = True,
        seed: int = 0,
    ) -> None:
        if spatial_dims not in (2, 3) or len(patch_size) != spatial_dims:
            raise DataError(f"patch_size {list(patch_size)} does not match spatial_dims={spatial_dims}")
        if not volumes:
            raise DataError("no volumes to take patches from")
        self.volumes = list(volumes)
        self.patch_size = [int(s) for s in patch_size] + ([1] if spatial_dims == 2 else [])
        self.spatial_dims = spatial_dims
        self.patches_per_volume = patches_per_volume
        self.random = random
        rng = np.random.default_rng(seed)
        self.fixed_origins = None if random else [
            sample_patch_origins(v.body, self.patch_size, patches_per_volume, rng) for v in self.volumes
        ]

    def column_values(self, column: str) -> list[str] | None:
        """The patient ids of the volumes for ``patient_id``; None for any other column."""
        return [v.patient_id for v in self.volumes] if column == "patient_id" else None

    def __len__(self) -> int:
        return len(self.volumes) * self.patches_per_volume

    def item_source(self, index: int) -> str:
        """The file (or, for volumes made on the fly, the patient) item ``index`` is cut from."""
        volume = self.volumes[index // self.patches_per_volume]
        return volume.source or volume.patient_id

    def __getitem__(self, index: int) -> dict:
        volume = self.volumes[index // self.patches_per_volume]
        if self.fixed_origins is None:
            rng = item_rng(index)
            origin = sample_patch_origins(volume.body, self.patch_size, 1, rng)[0]
        else:
            origin = self.fixed_origins[index // self.patches_per_volume][index % self.patches_per_volume]
        squeeze = (lambda a: a[..., 0]) if self.spatial_dims == 2 else (lambda a: a)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(squeeze(crop(volume.image, origin, self.patch_size)), dtype=np.float32)),
            "patient_id": volume.patient_id,
        }
        if volume.mask is not None:
            item["mask"] = torch.from_numpy(np.ascontiguousarray(squeeze(crop(volume.mask, origin, self.patch_size)))[None].astype(np.uint8))
        if volume.label_mask is not None:
            item["label"] = torch.tensor(int(crop(volume.label_mask, origin, self.patch_size).any()), dtype=torch.long)
        return item
