"""What every DataModule shares: its description for the model, loaders, splits and patch sampling.

Every DataModule yields dicts with ``image`` (C, *spatial) float32 in [0, 1] and, when it has them,
``label`` (int64), ``mask`` (1, *spatial) uint8 and ``patient_id`` (str).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from lightning_ssl.config import DataConfig


@dataclass
class DataInfo:
    """What a model needs to know about the data: the input contract published with the weights."""

    spatial_dims: int
    in_channels: int
    channel_names: list[str]
    patch_size: list[int]
    intensity: str
    modality: str
    spacing: list[float] | None = None
    axes: str = "X,Y,Z"
    num_classes: int | None = None
    class_names: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (stored in checkpoints and zoo metadata)."""
        return asdict(self)


def ct_info(config: Any, modality: str = "CT", **extra: Any) -> DataInfo:
    """The input contract of one-channel CT windowed by ``config.hu_window`` and scaled to [0, 1]."""
    low, high = config.hu_window
    return DataInfo(
        spatial_dims=config.spatial_dims,
        in_channels=1,
        channel_names=["CT"],
        patch_size=list(config.patch_size),
        intensity=f"HU clipped to [{low:g}, {high:g}] then scaled to [0, 1]",
        modality=modality,
        **extra,
    )


class BaseDataModule(pl.LightningDataModule):
    """Loaders from ``train_dataset``/``val_dataset``/``test_dataset``, set by ``setup``."""

    Config: type[DataConfig] = DataConfig

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    @property
    def info(self) -> DataInfo:
        """The data's description, known before ``setup``."""
        raise NotImplementedError

    def metadata_vocabulary(self, column: str) -> list[str] | None:
        """Sorted distinct values of a metadata column (e.g. ``patient_id``) in the training split.

        None when the data has no such column. Datasets that have metadata implement
        ``column_values(column) -> list[str] | None``.
        """
        if self.train_dataset is None:
            self.setup("fit")
        column_values = getattr(self.train_dataset, "column_values", None)
        values = column_values(column) if column_values is not None else None
        if values is None:
            return None
        return sorted({str(v) for v in values if v is not None})

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not created this split")
        workers = self.config.num_workers
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(dataset) > self.config.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches, fixed order."""
        return self._loader(self.val_dataset, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches, fixed order."""
        return self._loader(self.test_dataset, shuffle=False)


def split_patients(patient_ids: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Deterministic patient-level split: no patient is in two splits; at least one in each asked-for split."""
    unique = sorted(set(patient_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    n_val = max(1, round(val_fraction * len(unique))) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * len(unique))) if test_fraction > 0 else 0
    if n_val + n_test >= len(unique):
        raise ValueError(
            f"{len(unique)} patient(s) cannot be split into train/val/test with val_fraction={val_fraction} "
            f"and test_fraction={test_fraction}: add patients or lower the fractions"
        )
    return {
        "val": shuffled[:n_val],
        "test": shuffled[n_val : n_val + n_test],
        "train": shuffled[n_val + n_test :],
    }


def body_box(body_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive-exclusive bounding box (low, high) of the true voxels of a mask."""
    coords = [np.flatnonzero(body_mask.any(axis=tuple(a for a in range(body_mask.ndim) if a != axis))) for axis in range(body_mask.ndim)]
    if any(c.size == 0 for c in coords):
        raise ValueError("the body mask is empty: no voxel above the body threshold")
    return np.array([c[0] for c in coords]), np.array([c[-1] + 1 for c in coords])


def sample_patch_origins(
    body_mask: np.ndarray, patch_size: Sequence[int], count: int, rng: np.random.Generator, tries: int = 50
) -> np.ndarray:
    """``count`` patch corners whose patch centre lies inside the body (the volume must fit the patch)."""
    shape = np.array(body_mask.shape)
    size = np.array(patch_size)
    if np.any(size > shape):
        raise ValueError(f"patch size {tuple(size)} is larger than the volume {tuple(shape)}")
    low, high = body_box(body_mask)
    centre_low = np.clip(low, size // 2, shape - size + size // 2)
    centre_high = np.clip(high - 1, centre_low, shape - size + size // 2)
    origins = np.empty((count, len(shape)), dtype=np.int64)
    for i in range(count):
        for _ in range(tries):
            centre = rng.integers(centre_low, centre_high + 1)
            if body_mask[tuple(centre)]:
                break
        origins[i] = centre - size // 2
    return origins


def crop(array: np.ndarray, origin: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The box of ``size`` at ``origin`` over the last ``len(size)`` axes of ``array``."""
    lead = array.ndim - len(size)
    index = (slice(None),) * lead + tuple(slice(int(o), int(o) + int(s)) for o, s in zip(origin, size))
    return array[index]
