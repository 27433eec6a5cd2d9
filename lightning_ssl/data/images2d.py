"""What the 2D image DataModules share: PNG/JPEG/GIF read with PIL as grayscale in [0, 1], binary masks,
records of files with their class and patient, a dataset over them, patient splits and caching (memory or disk)."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from lightning_ssl.data.base import BaseDataModule, DataInfo, require_2d
from lightning_ssl.data.disk_cache import ArrayCache, cache_folder
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.intensity import scale_to_unit
from lightning_ssl.data.verify import FileCheck, verify_files
from lightning_ssl.errors import one_line

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
INTENSITY = "grey levels / 255 (16-bit images / 65535) -> [0, 1], resized to patch_size (bilinear, antialiased)"
_READ_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def image_info(config: Any, channel: str, modality: str, class_names: Sequence[str] = ()) -> DataInfo:
    """The input contract of one-channel 2D images scaled to [0, 1] and resized to ``config.patch_size``."""
    return DataInfo(
        spatial_dims=2,
        in_channels=1,
        channel_names=[channel],
        patch_size=list(config.patch_size),
        intensity=INTENSITY,
        modality=modality,
        axes="H,W",
        num_classes=len(class_names) if class_names else None,
        class_names=list(class_names),
    )


def is_hidden(path: Path, root: Path) -> bool:
    """True for dot-files, macOS resource forks and anything under a hidden or ``__MACOSX`` folder below ``root``."""
    return any(part.startswith(".") or part == "__MACOSX" for part in path.relative_to(root).parts)


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether a file name matches any of the glob ``patterns``, ignoring case."""
    return any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in patterns)


def list_images(folder: Path, recursive: bool = False, patterns: Sequence[str] = ()) -> list[Path]:
    """Sorted image files in ``folder`` (PNG/JPEG/GIF, or names matching ``patterns``), hidden files skipped."""
    files = folder.rglob("*") if recursive else folder.iterdir()
    wanted = (lambda p: matches(p.name, patterns)) if patterns else (lambda p: p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(p for p in files if p.is_file() and wanted(p) and not is_hidden(p, folder))


def read_gray(path: Path) -> np.ndarray:
    """(H, W) float32 in [0, 1]: colour converted to grey (PIL ``L``), 8-bit / 255, 16-bit / 65535."""
    try:
        with Image.open(path) as image:
            if image.mode in SIXTEEN_BIT_MODES:
                return scale_to_unit(np.asarray(image), 65535)
            return scale_to_unit(np.asarray(image.convert("L")), 255)
    except _READ_ERRORS as error:
        raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and an image?)") from None


def read_binary_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 {0, 1} from a mask stored as 0/1 or 0/255; DataError naming the file for any other value."""
    try:
        with Image.open(path) as image:
            if image.mode == "1":
                values = np.asarray(image, dtype=np.uint8)
            elif image.mode in ("RGB", "RGBA", "LA"):
                values = np.asarray(image.convert("L"))
            else:
                values = np.asarray(image)
    except _READ_ERRORS as error:
        raise DataError(f"cannot read mask {path}: {one_line(error)} (is the file complete and an image?)") from None
    found = set(np.unique(values).tolist())
    if found <= {0, 1}:
        return values.astype(np.uint8)
    if found <= {0, 255}:
        return (values == 255).astype(np.uint8)
    shown = sorted(found - {0, 1, 255})[:5]
    raise DataError(f"mask {path} holds values {shown}: expected a binary mask of 0/1 or 0/255 (a lossy JPEG? save masks as PNG)")


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A float32 (H, W) image resized to ``size`` (height, width): bilinear, antialiased when shrinking."""
    if list(image.shape) == list(size):
        return image
    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32)).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def resize_mask(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """A uint8 (H, W) label map resized to ``size`` (height, width) by nearest neighbour."""
    if list(mask.shape) == list(size):
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.Resampling.NEAREST))


def check_image_file(path: Path) -> tuple[int, int]:
    """(width, height) of an image file after a cheap read of all of it: JPEGs decoded at 1/8 scale, PNG chunks
    checked against their CRCs, other formats decoded; DataError naming the file when it is empty, cut short or no image."""
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes): replace it with the complete image or remove it")
    try:
        with Image.open(path) as image:
            size = image.size
            if image.format == "JPEG":
                image.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.load()
            elif image.format == "PNG":
                image.verify()
            else:
                image.load()
    except _READ_ERRORS as error:
        raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and an image?)") from None
    return size


def check_same_size(image: Path, image_shape: Sequence[int], mask: Path, mask_shape: Sequence[int]) -> None:
    """DataError naming both files when a mask's (height, width) differs from its image's."""
    if tuple(mask_shape) != tuple(image_shape):
        (height, width), (mask_height, mask_width) = image_shape, mask_shape
        raise DataError(f"mask {mask} is {mask_width}x{mask_height} but its image {image} is {width}x{height}: they must match")


@dataclass
class Record:
    """One image file with its class, mask files (unioned), patient and metadata columns."""

    image: Path
    label: int | None = None
    masks: tuple[Path, ...] = ()
    patient_id: str | None = None
    columns: dict[str, str] = field(default_factory=dict)


def _all_or_none(flags: list[bool], what: str) -> bool:
    if any(flags) and not all(flags):
        raise ValueError(f"some records have a {what} and some not: items of one dataset must have the same keys")
    return bool(flags) and flags[0]


class ImageDataset(Dataset):
    """Records read as ``image`` (1, H, W) float32 in [0, 1] resized to ``size``, with ``label`` (int64),
    ``mask`` (1, H, W) uint8 {0, 1} and ``patient_id`` (str) when the records have them.

    ``cache="memory"`` reads the first ``cache_rate`` of the items once, here (``workers`` threads), and
    keeps them as float32 (4 bytes a pixel); ``disk`` (an ``ArrayCache``) decodes and resizes each item once and
    stores it for every later epoch and run; ``cache="none"`` reads every item on every access.
    """

    def __init__(
        self,
        records: Sequence[Record],
        size: Sequence[int],
        cache: str = "none",
        cache_rate: float = 1.0,
        workers: int = 0,
        disk: ArrayCache | None = None,
    ) -> None:
        self.records = list(records)
        self.size = [int(s) for s in size]
        self.has_label = _all_or_none([r.label is not None for r in self.records], "label")
        self.has_mask = _all_or_none([bool(r.masks) for r in self.records], "mask")
        self.has_patient = _all_or_none([r.patient_id is not None for r in self.records], "patient id")
        self.disk = disk
        self._cache: dict[int, dict[str, Any]] = {}
        if cache == "memory":
            self._fill(round(cache_rate * len(self.records)), workers)

    def _fill(self, count: int, workers: int) -> None:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            items = pool.map(self.read, range(count))
            self._cache = dict(enumerate(tqdm(items, total=count, desc="caching images", leave=False, disable=count < 100)))

    def __len__(self) -> int:
        return len(self.records)

    def decode(self, record: Record) -> dict[str, np.ndarray]:
        """The image (1, H, W) float32 and the union of the masks (1, H, W) uint8 of ``record``, decoded and resized."""
        image = read_gray(record.image)
        arrays = {"image": resize_image(image, self.size)[None]}
        if self.has_mask:
            masks = [read_binary_mask(path) for path in record.masks]
            for path, mask in zip(record.masks, masks):
                check_same_size(record.image, image.shape, path, mask.shape)
            arrays["mask"] = np.maximum.reduce([resize_mask(mask, self.size) for mask in masks])[None]
        return arrays

    def read(self, index: int) -> dict[str, Any]:
        """Item ``index``: decoded from its files, or read from the disk cache."""
        record = self.records[index]
        if self.disk is None:
            arrays = self.decode(record)
        else:
            arrays = self.disk.arrays([record.image, *record.masks], f"size {self.size}", lambda: self.decode(record))
        item: dict[str, Any] = {key: torch.from_numpy(value) for key, value in arrays.items()}
        if self.has_label:
            item["label"] = torch.tensor(record.label, dtype=torch.int64)
        if self.has_patient:
            item["patient_id"] = record.patient_id
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        cached = self._cache.get(index)
        return dict(cached) if cached is not None else self.read(index)

    def item_source(self, index: int) -> str:
        """The image file of item ``index``."""
        return str(self.records[index].image)

    def class_labels(self) -> list[int] | None:
        """The class of every item (for label budgets), None when the records have no classes."""
        return [int(r.label) for r in self.records] if self.has_label else None

    def column_values(self, column: str) -> list[str] | None:
        """One value per item of a metadata column (``patient_id`` or a record column), None when there is no such column."""
        if column == "patient_id":
            return [str(r.patient_id) for r in self.records] if self.has_patient else None
        if self.records and all(column in r.columns for r in self.records):
            return [r.columns[column] for r in self.records]
        return None


def image_dataset(records: Sequence[Record], config: Any) -> ImageDataset:
    """An ImageDataset of ``records`` at ``config.patch_size``, cached as ``config.cache`` says."""
    disk = ArrayCache(cache_folder(config.cache_dir, "images2d")) if config.cache == "disk" else None
    return ImageDataset(records, config.patch_size, config.cache, config.cache_rate, config.num_workers, disk)


def check_record(record: Record) -> None:
    """DataError naming the file when the image or a mask cannot be read, a mask is not binary or not the image's size."""
    width, height = check_image_file(record.image)
    for mask in record.masks:
        check_same_size(record.image, (height, width), mask, read_binary_mask(mask).shape)


def verify_records(records: Sequence[Record], config: Any, kind: str) -> None:
    """Check every record's files once (see ``verify_files``); DataProblems naming every bad file."""
    verify_files([FileCheck((r.image, *r.masks), partial(check_record, r)) for r in records], config, kind)


def patient_of(record: Record) -> str:
    """The patient id of a record, the key of patient-level splits."""
    return str(record.patient_id)


class ImageDataModule(BaseDataModule):
    """The template of the 2D image datasets: 2D patch sizes only; ``image_splits`` makes an ImageDataset of each
    split's records (after checking every file, see ``verify_records``)."""

    def check_config(self) -> None:
        """ConfigError unless the config asks for 2D images of a 2-value patch size."""
        require_2d(self.config)

    def image_splits(self, splits: dict[str, Sequence[Record]]) -> dict[str, ImageDataset | None]:
        """An ImageDataset per non-empty split, after one check of every record's files (in file name order)."""
        every = {str(r.image): r for records in splits.values() for r in records}
        verify_records([every[name] for name in sorted(every)], self.config, self.config.name)
        return {name: image_dataset(records, self.config) if records else None for name, records in splits.items()}
