"""What every DataModule shares: its description for the model, loaders, splits and patch sampling.

Every DataModule yields dicts with ``image`` (C, *spatial) float32 in [0, 1] and, when it has them,
``label`` (int64), ``mask`` (1, *spatial) uint8 and ``patient_id`` (str).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from monai.data import CacheDataset, PersistentDataset
from monai.data import Dataset as MonaiDataset
from pytorch_lightning.utilities import CombinedLoader, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from lightning_ssl.data.budget import labeled_subset
from lightning_ssl.data.disk_cache import cache_folder
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.sampling import EpochIndices, ProcessShare, ShuffledBatches, Subset
from lightning_ssl.schema import ConfigError, DataConfig, DataInfo


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


def check_patch_size(config: Any) -> None:
    """ConfigError unless ``data.patch_size`` has ``data.spatial_dims`` values, 3 (cubes) or 2 (axial slice patches)."""
    if config.spatial_dims not in (2, 3) or len(config.patch_size) != config.spatial_dims:
        raise ConfigError(
            f"data.patch_size={list(config.patch_size)} needs {config.spatial_dims} values for "
            f"data.spatial_dims={config.spatial_dims} (3 values make cubes, 2 patches of axial slices)"
        )


def require_2d(config: Any) -> None:
    """ConfigError unless the config asks for 2D images of a 2-value patch size (the data holds 2D images only)."""
    if config.spatial_dims != 2 or len(config.patch_size) != 2:
        raise ConfigError(
            f"data {config.name!r} holds 2D images: set data.spatial_dims=2 and a 2-value data.patch_size "
            f"(got spatial_dims={config.spatial_dims}, patch_size={list(config.patch_size)})"
        )


class BaseDataModule(pl.LightningDataModule):
    """The template every dataset fills in: ``check_config`` (settings it cannot use), ``make_splits`` (its train /
    val / test datasets, with ``data_root`` for data read from files and ``split`` for data without an official
    split); ``setup`` runs them once. Loaders, label budgets and metadata come from here.

    ``training_data`` says what the training loader holds: ``all`` training images (self-supervised pretraining),
    the ``labeled`` budget (fine-tuning), or both budget and pool (``semi_supervised`` methods). ``root_hint`` says
    what ``data.root`` must point at. ``evaluation_data`` says what the method scores (set by the run from the method):
    ``patches`` like the training ones, or whole ``volumes`` (a segmentation scored by sliding windows); datasets that
    cannot give whole volumes give patches.
    """

    Config: type[DataConfig] = DataConfig
    training_data: str = "all"
    evaluation_data: str = "patches"
    root_hint: str = "the data folder"

    def __init__(self, config: Any) -> None:
        super().__init__()
        if config.batch_size < 1 or config.num_workers < 0:
            raise ConfigError(
                f"data.batch_size={config.batch_size} and data.num_workers={config.num_workers}: "
                "a batch holds at least 1 item and workers are 0 (read in the main process) or more"
            )
        self.config = config
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.train_samplers: list[ShuffledBatches] = []
        self.resume_position: tuple[int, int] | None = None

    @property
    def info(self) -> DataInfo:
        """The data's description, known before ``setup``."""
        raise NotImplementedError

    def check_config(self) -> None:
        """ConfigError (or DataError) for settings this data cannot use; by default, a patch size of spatial_dims values."""
        check_patch_size(self.config)

    def make_splits(self) -> dict[str, Dataset | None]:
        """The ``train``, ``val`` and ``test`` datasets (None or absent: no such split)."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        """Check the config and make the splits, once."""
        if self.train_dataset is not None:
            return
        self.check_config()
        splits = self.make_splits()
        self.train_dataset, self.val_dataset, self.test_dataset = (splits.get(name) for name in ("train", "val", "test"))

    def data_root(self) -> Path:
        """``data.root`` as a folder; DataError saying what it must point at when it is unset or not a folder."""
        root = self.config.get("root")
        if root is None:
            raise DataError(f"data.root is not set: pass data.root=/path/to/{self.config.name} ({self.root_hint})")
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise DataError(f"data.root={str(root)!r} is not a folder: point it at {self.root_hint}")
        return folder

    def split(
        self, items: Sequence[Any], val_fraction: float, test_fraction: float, key: Callable[[Any], str] = str
    ) -> dict[str, list[Any]]:
        """``items`` split by their ``key`` (the patient; the item itself by default) with ``split_patients`` drawn from
        ``data.split_seed``: no key in two splits; items keep their order."""
        splits = split_patients([key(item) for item in items], val_fraction, test_fraction, self.config.split_seed)
        where = {value: name for name, values in splits.items() for value in values}
        return {name: [item for item in items if where[key(item)] == name] for name in splits}

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

    def train_labels(self) -> np.ndarray | None:
        """Class label of every training sample (-1 when unknown), or None when the data has no class labels.

        Datasets with labels implement ``class_labels() -> Sequence[int]`` without reading the images.
        """
        if self.train_dataset is None:
            self.setup("fit")
        class_labels = getattr(self.train_dataset, "class_labels", None)
        labels = class_labels() if class_labels is not None else None
        return None if labels is None else np.asarray(labels, dtype=np.int64)

    def budget_labels(self) -> np.ndarray | None:
        """The class of every unit ``data.label_budget`` counts (here a training sample; a case where a case gives
        several samples), -1 when unknown; None when the data has no class labels."""
        return self.train_labels()

    def budget_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(labeled, unlabeled) indices of the training split under ``data.label_budget``: stratified by class, or in
        a seeded random order (nested too) for data without class labels (e.g. masks to segment)."""
        labels = self.train_labels()
        if labels is None:
            if not len(self.train_dataset) or "mask" not in self.train_dataset[0]:
                raise DataError(f"data {self.config.name!r} has no class labels or masks, so data.label_budget cannot select any")
            labels = np.zeros(len(self.train_dataset), dtype=np.int64)
        return labeled_subset(labels, self.config.label_budget, self.config.seed)

    def budget_datasets(self) -> tuple[Dataset, Dataset]:
        """(labeled, unlabeled) training samples under ``data.label_budget``; the unlabeled ones lose ``label`` and ``mask``."""
        labeled, unlabeled = self.budget_indices()
        return Subset(self.train_dataset, labeled.tolist()), WithoutLabels(Subset(self.train_dataset, unlabeled.tolist()))

    def labeled_dataset(self) -> Dataset:
        """The training samples that keep their labels under ``data.label_budget``."""
        return self.budget_datasets()[0]

    def unlabeled_dataset(self) -> Dataset:
        """The rest of the training split, without ``label`` and ``mask``: the pool for semi-supervised methods."""
        return self.budget_datasets()[1]

    def labeled_dataloader(self) -> DataLoader:
        """Shuffled batches of the labeled budget."""
        return self._loader(self.labeled_dataset(), shuffle=True)

    def unlabeled_dataloader(self) -> DataLoader:
        """Shuffled batches of the unlabeled pool."""
        return self._loader(self.unlabeled_dataset(), shuffle=True)

    def semi_supervised_dataloader(self) -> CombinedLoader:
        """Training batches as ``{"labeled": batch, "unlabeled": batch}``: the budget and the pool side by side.

        An epoch runs through the longer of the two, cycling the shorter. With every label in the
        budget the pool is empty and each batch holds ``labeled`` only.
        """
        labeled, unlabeled = self.budget_datasets()
        loaders = {"labeled": self._loader(labeled, shuffle=True)}
        if len(unlabeled):
            loaders["unlabeled"] = self._loader(unlabeled, shuffle=True)
        return CombinedLoader(loaders, mode="max_size_cycle")

    def _loader(self, dataset: Dataset | None, shuffle: bool, batch_size: int | None = None) -> DataLoader:
        """Batches of ``dataset`` (of ``batch_size``, default ``data.batch_size``): shuffled by ``data.seed`` and the
        epoch (resumable, see ``resume_at``), or in order; each process reads its own share. The loader's own generator
        keeps the global RNG untouched."""
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not created this split")
        workers, size = self.config.num_workers, batch_size or self.config.batch_size
        common = dict(num_workers=workers, persistent_workers=workers > 0, generator=torch.Generator().manual_seed(self.config.seed))
        if not shuffle:
            return DataLoader(dataset, batch_size=size, sampler=ProcessShare(len(dataset)), **common)
        batches = ShuffledBatches(EpochIndices(len(dataset)), size, drop_last=len(dataset) > size, seed=self.config.seed)
        if self.resume_position is not None:
            batches.resume(*self.resume_position)
        self.train_samplers.append(batches)
        return DataLoader(dataset, batch_sampler=batches, **common)

    def resume_at(self, epoch: int, batches: int) -> None:
        """Make the training loaders start after ``batches`` batches of ``epoch`` (a resumed run): those made so far,
        and those made until ``resume_position`` is cleared when training starts."""
        self.resume_position = (epoch, batches)
        for sampler in self.train_samplers:
            sampler.resume(epoch, batches)

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        """Shuffled training batches of what the method trains on (``training_data``, set by the run from the
        method): every training image, the labeled budget, or the budget and the unlabeled pool side by side."""
        if self.training_data == "semi_supervised":
            return self.semi_supervised_dataloader()
        if self.training_data == "labeled":
            return self.labeled_dataloader()
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches, fixed order; none (with a warning) when the data has no validation split."""
        if self.val_dataset is None and self.train_dataset is not None:
            rank_zero_warn(
                f"data {self.config.name!r} has no validation split: training runs without validation, "
                f"so no best checkpoint (the zoo gets the last one); raise data.val_fraction if the data allows"
            )
            return []
        return self._loader(self.val_dataset, shuffle=False, batch_size=self.evaluation_batch_size())

    def test_dataloader(self) -> DataLoader:
        """Test batches, fixed order; the validation split, with a warning, for data without a test split."""
        size = self.evaluation_batch_size()
        if self.test_dataset is None:
            rank_zero_warn(f"data {self.config.name!r} has no test split: the test metrics are on the validation split")
            return self._loader(self.val_dataset, shuffle=False, batch_size=size)
        return self._loader(self.test_dataset, shuffle=False, batch_size=size)

    def evaluation_batch_size(self) -> int:
        """Items per validation and test batch: ``data.batch_size`` (datasets of whole volumes of different shapes: 1)."""
        return self.config.batch_size


class WithoutLabels(Dataset):
    """A dataset whose items lose their ``label`` and ``mask`` keys."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {k: v for k, v in self.dataset[index].items() if k not in ("label", "mask")}


CACHES = ("none", "memory", "disk")


def cached_dataset(items: Sequence[dict], transform: Any, config: Any) -> Dataset:
    """A MONAI dataset of ``items`` (dicts of file names and metadata) through ``transform``, cached as configured.

    ``data.cache``: none (read every time), memory (CacheDataset keeps ``cache_rate`` of the
    transformed items) or disk (PersistentDataset in ``cache_dir``, reused by later runs). Cached items are handed out
    without a copy (a whole volume copied for every patch cut from it would cost more than decoding): readers must not
    change them in place.
    """
    if config.cache == "none":
        return MonaiDataset(list(items), transform)
    if config.cache == "memory":
        workers = config.num_workers or None
        return CacheDataset(list(items), transform, cache_rate=config.cache_rate, num_workers=workers, copy_cache=False)
    if config.cache == "disk":
        return PersistentDataset(list(items), transform, cache_dir=cache_folder(config.cache_dir))
    raise DataError(f"data.cache={config.cache!r} is not one of {', '.join(CACHES)}")


def split_patients(patient_ids: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Deterministic patient-level split: no patient is in two splits; at least one in each asked-for split."""
    unique = sorted(set(patient_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    n_val = max(1, round(val_fraction * len(unique))) if val_fraction > 0 else 0
    n_test = max(1, round(test_fraction * len(unique))) if test_fraction > 0 else 0
    if n_val + n_test >= len(unique):
        raise DataError(
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
        raise DataError("the body mask is empty: no voxel above the body threshold")
    return np.array([c[0] for c in coords]), np.array([c[-1] + 1 for c in coords])


def sample_patch_origins(
    body_mask: np.ndarray,
    patch_size: Sequence[int],
    count: int,
    rng: np.random.Generator,
    tries: int = 50,
    box: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``count`` patch corners whose patch centre lies inside the body (the volume must fit the patch); ``box``: the
    body's bounding box when known."""
    shape = np.array(body_mask.shape)
    size = np.array(patch_size)
    if np.any(size > shape):
        raise DataError(
            f"patch size {size.tolist()} is larger than the volume {shape.tolist()}: lower data.patch_size"
        )
    low, high = body_box(body_mask) if box is None else box
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
