"""JSRT chest X-rays (247 headerless 12-bit .IMG files) with the optional SCR lung/heart/clavicle masks.

Layout: ``<root>/All247images/JPCLN001.IMG`` .. ``JPCNN093.IMG`` (``data.root`` may also be that folder itself):
2048 x 2048 pixels of 0.175 mm, 16-bit big-endian, 12 bits used. JPCLN images have a nodule (label 1, 154 of
them), JPCNN images none (label 0, 93). In the files high values are dark, so the image is inverted to the usual
display: ``1 - value / 4095`` (lungs dark, bones bright).

SCR masks: any ``fold1`` / ``fold2`` folder holding ``masks/left lung`` up to three levels under ``root``
(``<root>/scratch/fold1/masks/{left lung,right lung,heart,left clavicle,right clavicle}/JPCLN001.gif``, 1024 x 1024,
0/255). ``data.mask``: lungs (left | right), heart, clavicles (left | right) or none; auto = lungs when the SCR
folders exist. Images are resized to ``data.patch_size`` (default 256 x 256, antialiased bilinear), masks with
nearest neighbours, ``mask`` (1, H, W) uint8 in {0, 1}.

Split (``data.split``): scr = the SCR 2-fold split, fold1 train and validation (``val_fraction`` of it by split_seed),
fold2 test: 112 / 12 / 123 images (MultiMix's 111 / 13 / 123 is ``data.val_fraction=0.105``); random = a seeded
split of every image (``val_fraction``, ``test_fraction``); auto = scr when the SCR folders exist. One image per
patient: the patient id is the image id (``JPCLN001``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import Dataset as MonaiDataset
from monai.transforms import Transform
from PIL import Image
from torch.utils.data import Dataset

from lightning_ssl.data.base import BaseDataModule, DataInfo, cached_dataset, require_2d
from lightning_ssl.data.disk_cache import ArrayCache, cache_folder
from lightning_ssl.data.errors import DataError, data_errors
from lightning_ssl.data.verify import FileCheck, Problems, verify_files
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import Cache, FolderDataConfig

SIDE = 2048
FILE_BYTES = SIDE * SIDE * 2
MAX_VALUE = 4095
PIXEL_MM = 0.175
IMAGE_NAME = re.compile(r"^JPC(LN|NN)\d{3}\.IMG$", re.IGNORECASE)
LAYOUT = "<root>/All247images/JPCLN001.IMG .. JPCNN093.IMG"
MASK_PARTS = {
    "lungs": ("left lung", "right lung"),
    "heart": ("heart",),
    "clavicles": ("left clavicle", "right clavicle"),
}
MASK_CHOICES = ("auto", "none", *MASK_PARTS)
SPLIT_CHOICES = ("auto", "scr", "random")
FOLDS = ("fold1", "fold2")
CLASS_NAMES = ("no nodule", "nodule")

log = logging.getLogger(__name__)


@dataclass
class JSRTConfig(FolderDataConfig):
    """JSRT at ``patch_size`` (default 256 x 256) with SCR masks (``mask``) and the SCR or a seeded ``split``.

    ``val_fraction``: of fold1 with the SCR split, of every image with the random split; ``test_fraction``: random
    split only. Images are read and resized once and kept in memory (``cache=memory``, the default), or stored in
    ``cache_dir`` for later runs too (``cache=disk``).
    """

    name: str = "jsrt"
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [256, 256])
    batch_size: int = 16
    cache: Cache = Cache.memory
    mask: str = "auto"
    split: str = "auto"
    val_fraction: float = 0.1
    test_fraction: float = 0.5


def find_images(folder: Path) -> dict[str, Path]:
    """The JSRT .IMG files by image id (``JPCLN001``) in ``folder`` or its All247images, after checking names and sizes."""
    images = folder / "All247images" if (folder / "All247images").is_dir() else folder
    files = sorted(p for p in images.iterdir() if p.is_file() and p.suffix.lower() == ".img")
    if not files:
        raise DataError(f"no JSRT .IMG file in {images}: expected {LAYOUT}")
    problems = Problems()
    for path in files:
        with problems.collect():
            if not IMAGE_NAME.match(path.name):
                raise DataError(f"{path} is not a JSRT image name: JPCLNnnn.IMG (with nodule) or JPCNNnnn.IMG (without)")
            check_size(path)
    problems.raise_any()
    return {p.stem.upper(): p for p in files}


def check_size(path: Path) -> None:
    """Raise unless ``path`` holds exactly 2048 x 2048 16-bit pixels."""
    size = path.stat().st_size
    if size != FILE_BYTES:
        raise DataError(f"{path} has {size} bytes, not {SIDE}x{SIDE}x2 = {FILE_BYTES}: truncated or not a JSRT .IMG")


def read_jsrt(path: Path) -> np.ndarray:
    """One JSRT image (2048, 2048) float32 in [0, 1] as displayed: ``1 - value / 4095``, bones bright.

    The files are headerless raw big-endian 16-bit pixels, a format no image library recognises, so numpy reads them.
    """
    check_size(path)
    values = np.fromfile(path, dtype=">u2").reshape(SIDE, SIDE)
    if values.max() > MAX_VALUE:
        raise DataError(f"{path} holds values up to {values.max()}, above 12 bits ({MAX_VALUE}): not a JSRT .IMG")
    return 1.0 - values.astype(np.float32) / MAX_VALUE


def find_scr(root: Path) -> dict[str, Path]:
    """The ``masks`` folder of each SCR fold found up to three levels under ``root`` (empty when there is none)."""
    found: dict[str, Path] = {}
    for pattern in ("{}", "*/{}", "*/*/{}"):
        for fold in FOLDS:
            for folder in sorted(Path(root).expanduser().glob(pattern.format(fold))):
                if fold not in found and (folder / "masks" / "left lung").is_dir():
                    found[fold] = folder / "masks"
    return found


def fold_of_images(scr: dict[str, Path]) -> dict[str, str]:
    """The SCR fold of every image that has a left-lung mask."""
    return {p.stem.upper(): fold for fold, masks in scr.items() for p in sorted((masks / "left lung").glob("*.gif"))}


def read_mask(paths: Sequence[str]) -> np.ndarray:
    """The union of binary SCR GIF masks (0 and 255) as a bool array."""
    parts = [read_binary_gif(path) for path in paths]
    for path, part in zip(paths[1:], parts[1:]):
        if part.shape != parts[0].shape:
            raise DataError(
                f"the mask {path} is {part.shape[1]}x{part.shape[0]} but {paths[0]} is {parts[0].shape[1]}x{parts[0].shape[0]}"
            )
    return np.logical_or.reduce(parts)


def read_binary_gif(path: str) -> np.ndarray:
    """One SCR mask as a bool array: its grey levels must be 0 and one other value (255)."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the mask {path}: {error}") from None
    values = np.unique(array)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        raise DataError(f"{path} holds the grey levels {values[:6].tolist()}: not a binary SCR mask (0 and 255)")
    return array > 0


class LoadJSRT(Transform):
    """A JSRT item of file names to tensors: ``image`` (1, H, W) float32, ``label``, ``patient_id``, ``mask`` (1, H, W) uint8.

    With a ``disk`` cache the resized image and mask are decoded once and read back from it later.
    """

    def __init__(self, size: Sequence[int], disk: ArrayCache | None = None) -> None:
        self.size = [int(s) for s in size]
        self.disk = disk

    def decode(self, item: dict) -> dict[str, np.ndarray]:
        """Read, invert and resize the image; read, unite and resize its masks."""
        image = torch.from_numpy(read_jsrt(Path(item["image"])))[None, None]
        image = F.interpolate(image, size=self.size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
        arrays = {"image": image[0].numpy()}
        if "mask_files" in item:
            mask = torch.from_numpy(read_mask(item["mask_files"])).to(torch.uint8)[None, None]
            arrays["mask"] = F.interpolate(mask, size=self.size, mode="nearest-exact")[0].numpy()
        return arrays

    def __call__(self, item: dict) -> dict:
        """The item's arrays (decoded, or from the disk cache) with its label and patient id."""
        if self.disk is None:
            arrays = self.decode(item)
        else:
            sources = [item["image"], *item.get("mask_files", [])]
            arrays = self.disk.arrays(sources, f"size {self.size}", lambda: self.decode(item))
        out = {key: torch.from_numpy(value) for key, value in arrays.items()}
        return {**out, "label": torch.tensor(item["label"], dtype=torch.long), "patient_id": item["patient_id"]}


class JSRTDataset(Dataset):
    """JSRT items through ``LoadJSRT``, cached as ``data.cache`` says; labels and patient ids known without reading."""

    def __init__(self, items: list[dict], config: JSRTConfig) -> None:
        self.items = items
        if config.cache == "disk":
            self.dataset = MonaiDataset(items, LoadJSRT(config.patch_size, ArrayCache(cache_folder(config.cache_dir, "jsrt"))))
        else:
            with data_errors():
                self.dataset = cached_dataset(items, LoadJSRT(config.patch_size), config)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        with data_errors():
            return self.dataset[index]

    def item_source(self, index: int) -> str:
        """The .IMG file of item ``index``."""
        return self.items[index]["image"]

    def class_labels(self) -> list[int]:
        """Nodule (1) or not (0) per image, from the file names."""
        return [item["label"] for item in self.items]

    def column_values(self, column: str) -> list[str] | None:
        """The image id of every item for ``patient_id``; None for any other column."""
        return [item["patient_id"] for item in self.items] if column == "patient_id" else None


@DATASETS.register("jsrt")
class JSRTDataModule(BaseDataModule):
    """JSRT chest X-rays, ``label`` = nodule, optional SCR ``mask``, SCR 2-fold or seeded split."""

    Config = JSRTConfig
    root_hint = "the folder holding All247images (and the SCR fold1/fold2 masks)"

    @property
    def info(self) -> DataInfo:
        """One X-ray channel, inverted 12-bit values; nodule / no nodule."""
        cfg = self.config
        return DataInfo(
            spatial_dims=2,
            in_channels=1,
            channel_names=["X-ray"],
            patch_size=list(cfg.patch_size),
            intensity=f"1 - value / {MAX_VALUE} (12-bit raw inverted: lungs dark, bones bright)",
            modality="X-ray (chest, JSRT)",
            spacing=[PIXEL_MM * SIDE / s for s in cfg.patch_size],
            axes="H,W",
            num_classes=2,
            class_names=list(CLASS_NAMES),
        )

    def check_config(self) -> None:
        """2D images, and known ``data.mask`` and ``data.split`` choices."""
        cfg = self.config
        require_2d(cfg)
        for key, choices in (("mask", MASK_CHOICES), ("split", SPLIT_CHOICES)):
            if getattr(cfg, key) not in choices:
                raise DataError(f"data.{key}={getattr(cfg, key)!r} is not one of {', '.join(choices)}")

    def _mask_and_split(self, scr: dict[str, Path]) -> tuple[str | None, str]:
        """The mask kind (None: no mask) and split to use, given the SCR folds found."""
        cfg = self.config
        wanted = [
            f"data.{key}={value}" for key, value in (("mask", cfg.mask), ("split", cfg.split)) if value in (*MASK_PARTS, "scr")
        ]
        if wanted and set(scr) != set(FOLDS):
            raise DataError(
                f"{' and '.join(wanted)} need the SCR masks: looked for fold1 and fold2 folders holding 'masks/left lung' "
                f"up to three levels under {cfg.root} (found {sorted(scr) or 'none'}); or set data.mask=none data.split=random"
            )
        has_scr = set(scr) == set(FOLDS)
        if scr and not has_scr:
            log.warning("only the SCR %s found under %s: JSRT is used without masks and split at random", sorted(scr), cfg.root)
        mask = ("lungs" if has_scr else None) if cfg.mask == "auto" else (None if cfg.mask == "none" else cfg.mask)
        split = ("scr" if has_scr else "random") if cfg.split == "auto" else cfg.split
        return mask, split

    def _item(self, image_id: str, path: Path, masks: Path | None, mask: str | None) -> dict:
        """The file names and labels of one image; its mask files when ``mask`` is set (checked to exist)."""
        item = {"image": str(path), "label": int(image_id.startswith("JPCLN")), "patient_id": image_id}
        if mask is None:
            return item
        if masks is None:
            raise DataError(f"{path} has no SCR mask in fold1 or fold2: data.mask=none trains without masks")
        files = [masks / part / f"{image_id}.gif" for part in MASK_PARTS[mask]]
        absent = next((f for f in files if not f.is_file()), None)
        if absent is not None:
            raise DataError(f"the SCR mask {absent} of {path.name} is missing: data.mask=none trains without masks")
        item["mask_files"] = [str(f) for f in files]
        return item

    def _split(self, image_ids: list[str], folds: dict[str, str], split: str) -> dict[str, list[str]]:
        """Image ids by split: fold1 into train and val by split_seed and fold2 as test, or a seeded split of every image."""
        cfg = self.config
        if split == "random":
            return self.split(image_ids, cfg.val_fraction, cfg.test_fraction)
        outside = [i for i in image_ids if i not in folds]
        if outside:
            raise DataError(f"{outside[0]} has a JSRT image but no SCR mask in fold1 or fold2: set data.split=random")
        ids = self.split([i for i in image_ids if folds[i] == "fold1"], cfg.val_fraction, 0.0)
        ids["test"] = [i for i in image_ids if folds[i] == "fold2"]
        return ids

    def make_splits(self) -> dict[str, JSRTDataset | None]:
        """Find and check the images (and masks), split them, and build the datasets."""
        cfg = self.config
        root = self.data_root()
        images = find_images(root)
        scr = find_scr(root)
        mask, split = self._mask_and_split(scr)
        folds = fold_of_images(scr)
        ids = self._split(sorted(images), folds, split)
        items, problems = {}, Problems()
        for image_id, path in images.items():
            with problems.collect():
                items[image_id] = self._item(image_id, path, scr.get(folds.get(image_id, "")), mask)
        problems.raise_any()
        masks = [item["mask_files"] for item in items.values() if "mask_files" in item]
        verify_files([FileCheck(tuple(map(Path, files)), partial(read_mask, files)) for files in masks], cfg, "jsrt")
        return {name: JSRTDataset([items[i] for i in sorted(chosen)], cfg) if chosen else None for name, chosen in ids.items()}
