"""Patches cut from volumes: the one dataset behind every volume DataModule (CT folders, LUNA16, BraTS, phantoms).

A ``Volume`` holds what patches are cut from (``image`` (C, X, Y, Z), optionally ``mask`` (1, X, Y, Z)), where their
centres may fall (``body``) and its voxels of interest (``targets``: nodule centres, tumour voxels). A ``Positions``
strategy chooses each patch's corner. Training patches draw theirs at every access from ``item_rng(index)``, so a
resumed run reads the patches the uninterrupted run would have read; validation and test patches are fixed by the
split seed. With two patch sizes a patch is a 2D patch of one axial slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_ssl.data.base import body_box, crop, sample_patch_origins
from lightning_ssl.data.sampling import item_rng
from lightning_ssl.schema import ConfigError


def _no_targets() -> np.ndarray:
    return np.zeros((0, 3), dtype=np.int64)


@dataclass
class Volume:
    """One patient's volume (arrays or tensors), where patch centres may fall, its voxels of interest (K, 3), its
    spacing in mm (items then carry ``meta``), the file it was read from and its body's bounding box once known."""

    patient_id: str
    image: Any
    body: np.ndarray
    mask: Any = None
    targets: np.ndarray = field(default_factory=_no_targets)
    spacing: np.ndarray | None = None
    source: str | None = None
    box: tuple[np.ndarray, np.ndarray] | None = None

    def body_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The bounding box (low, high) of the body, computed once."""
        if self.box is None:
            self.box = body_box(np.asarray(self.body))
        return self.box


def holds_target(origin: np.ndarray, size: np.ndarray, targets: np.ndarray) -> bool:
    """Whether the box of ``size`` at ``origin`` holds any of the target voxels."""
    return bool(np.any(np.all((targets >= origin) & (targets < origin + size), axis=1)))


class Positions(Protocol):
    """How the corner of a volume's ``slot``-th patch is chosen."""

    def origin(self, volume: Volume, slot: int, size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The corner of the patch."""

    def planned_label(self, volume: Volume, slot: int) -> int | None:
        """Whether a random patch of this slot will hold a target, when known before it is drawn (None: not known)."""


class InBody:
    """Patches centred on a random voxel of the body."""

    def origin(self, volume: Volume, slot: int, size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A corner whose patch centre lies in the body."""
        return sample_patch_origins(volume.body, size, 1, rng, box=volume.body_box())[0]

    def planned_label(self, volume: Volume, slot: int) -> int | None:
        """Not known: a random patch may or may not reach a target."""
        return None


@dataclass(frozen=True)
class TargetFraction(InBody):
    """A ``fraction`` of the patches of a volume with targets centred on a random target voxel, the rest in the body."""

    fraction: float

    def origin(self, volume: Volume, slot: int, size: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A corner centring the patch on a target (with probability ``fraction``), else in the body."""
        if len(volume.targets) and rng.random() < self.fraction:
            centre = volume.targets[rng.integers(len(volume.targets))]
            return np.clip(centre - size // 2, 0, np.array(volume.body.shape) - size)
        return super().origin(volume, slot, size, rng)

    def planned_label(self, volume: Volume, slot: int) -> int | None:
        """Whether the volume has a target at all."""
        return int(len(volume.targets) > 0)


class TargetsFirst:
    """One patch around each target (the target anywhere in its middle half), the volume's other patches centred in
    the body away from every target (the Models Genesis recipe for LUNA16 nodules)."""

    def origin(self, volume: Volume, slot: int, size: np.ndarray, rng: np.random.Generator, tries: int = 200) -> np.ndarray:
        """Around target ``slot``, or a background corner (best effort: the last try if none avoids every target)."""
        limit = np.array(volume.body.shape) - size
        if slot < len(volume.targets):
            return np.clip(volume.targets[slot] - rng.integers(size // 4, size - size // 4), 0, limit)
        low, high = volume.body_box()
        origin = np.clip((low + high) // 2 - size // 2, 0, limit)
        for _ in range(tries):
            centre = rng.integers(low, high)
            if volume.body[tuple(centre)]:
                origin = np.clip(centre - size // 2, 0, limit)
                if not holds_target(origin, size, volume.targets):
                    break
        return origin

    def planned_label(self, volume: Volume, slot: int) -> int | None:
        """1 for a slot planned around a target, 0 for the others."""
        return int(slot < len(volume.targets))


def _tensor(patch: Any) -> torch.Tensor:
    if isinstance(patch, torch.Tensor):
        return patch.clone(memory_format=torch.contiguous_format)
    return torch.from_numpy(np.ascontiguousarray(patch))


class PatchDataset(Dataset):
    """``per_volume`` patches of each volume, placed by ``positions``: drawn at every access (``random``) or fixed by
    ``seed``. Items: ``image`` (C, *patch) float32 (through ``intensity`` when given), ``patient_id``, ``mask``
    (1, *patch) when the volume has one and ``with_mask``, ``label`` (a target in the patch) when ``labelled``, and
    ``meta`` (spacing) when the volume has a spacing.

    ``volumes`` may be any sequence, e.g. one reading cases from a cache on access; ``patient_ids`` then names them
    without reading.
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        patch_size: Sequence[int],
        per_volume: int,
        positions: Positions | None = None,
        random: bool = True,
        seed: int = 0,
        labelled: bool = False,
        with_mask: bool = True,
        intensity: Callable[[np.ndarray], np.ndarray] | None = None,
        patient_ids: Sequence[str] | None = None,
    ) -> None:
        if len(patch_size) not in (2, 3):
            raise ConfigError(f"data.patch_size={list(patch_size)} needs 3 values (cubes) or 2 (patches of axial slices)")
        self.volumes = volumes
        self.patient_ids = list(patient_ids) if patient_ids is not None else [v.patient_id for v in volumes]
        self.sources = self.patient_ids if patient_ids is not None else [v.source or v.patient_id for v in volumes]
        self.spatial_dims = len(patch_size)
        self.size = np.array([int(s) for s in patch_size] + [1] * (3 - len(patch_size)))
        self.per_volume = per_volume
        self.positions = positions or InBody()
        self.random = random
        self.seed = seed
        self.labelled = labelled
        self.with_mask = with_mask
        self.intensity = intensity

    def __len__(self) -> int:
        return len(self.patient_ids) * self.per_volume

    def _origin(self, volume: Volume, index: int) -> np.ndarray:
        rng = item_rng(index) if self.random else np.random.default_rng([self.seed, int(index)])
        return self.positions.origin(volume, int(index) % self.per_volume, self.size, rng)

    def _crop(self, array: Any, origin: np.ndarray) -> Any:
        patch = crop(array, origin, self.size)
        return patch[..., 0] if self.spatial_dims == 2 else patch

    def __getitem__(self, index: int) -> dict[str, Any]:
        volume = self.volumes[int(index) // self.per_volume]
        origin = self._origin(volume, index)
        image = self._crop(volume.image, origin)
        item: dict[str, Any] = {"image": _tensor(self.intensity(image) if self.intensity else image), "patient_id": volume.patient_id}
        if self.with_mask and volume.mask is not None:
            item["mask"] = _tensor(self._crop(volume.mask, origin))
        if self.labelled:
            item["label"] = torch.tensor(int(holds_target(origin, self.size, volume.targets)), dtype=torch.int64)
        if volume.spacing is not None:
            item["meta"] = {"spacing": torch.as_tensor(np.asarray(volume.spacing[: self.spatial_dims], dtype=np.float32))}
        return item

    def class_labels(self) -> list[int] | None:
        """Whether each item holds a target, without reading voxels: from the fixed positions, or planned by the
        positions for random ones; None when unlabelled or not known before drawing."""
        if not self.labelled:
            return None
        labels = []
        for index in range(len(self)):
            volume = self.volumes[index // self.per_volume]
            if self.random:
                label = self.positions.planned_label(volume, index % self.per_volume)
                if label is None:
                    return None
            else:
                label = int(holds_target(self._origin(volume, index), self.size, volume.targets))
            labels.append(label)
        return labels

    def column_values(self, column: str) -> list[str] | None:
        """The patient id of every item for ``patient_id``; None for any other column."""
        return [p for p in self.patient_ids for _ in range(self.per_volume)] if column == "patient_id" else None

    def item_indices(self, volume_indices: Sequence[int]) -> np.ndarray:
        """The indices of every item of the given volumes."""
        return np.array([v * self.per_volume + k for v in sorted(volume_indices) for k in range(self.per_volume)], dtype=np.int64)

    def item_source(self, index: int) -> str:
        """The file (or the patient) item ``index`` is cut from."""
        return self.sources[index // self.per_volume]
