"""A folder of one's own 2D images (X-rays, ultrasound, ...): every PNG/JPEG under ``root``, optional masks beside them.

With ``mask_suffix`` (e.g. ``-mask`` for ``1.jpg`` + ``1-mask.png``, ``_mask`` for ``benign (1)_mask.png``) every
image must have its mask (any image extension) in the same folder; without it, no item has a mask. With
``labels_from_folders`` the class is the first sub-folder under ``root`` (``<root>/<class>/.../image.png``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from lightning_ssl.data.base import DataInfo
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.images2d import (
    ImageDataModule,
    ImageDataset,
    Record,
    image_info,
    list_images,
    matches,
    patient_of,
)
from lightning_ssl.data.verify import Problems
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import FolderDataConfig

log = logging.getLogger(__name__)


@dataclass
class ImageFolderConfig(FolderDataConfig):
    """Every file under ``root`` (recursively) whose name matches ``pattern`` and none of ``exclude`` is one image.

    ``modality`` describes the images in the published input contract (e.g. X-ray, ultrasound).
    The patient id is the file's path under ``root`` without extension (one image per patient),
    or the first group of ``patient_id_regex`` on its name; splits are by patient. ``class_names``
    (with ``labels_from_folders``) fixes the class order; by default the sub-folders, sorted.
    """

    name: str = "image_folder"
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [256, 256])
    batch_size: int = 16
    pattern: list[str] = field(default_factory=lambda: ["*.png", "*.jpg", "*.jpeg"])
    exclude: list[str] = field(default_factory=lambda: ["*mask*"])
    mask_suffix: str | None = None
    modality: str = "unspecified"
    labels_from_folders: bool = False
    class_names: list[str] = field(default_factory=list)
    patient_id_regex: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.0


def folder_classes(root: Path) -> list[str]:
    """The sorted names of the visible sub-folders of ``root``: the classes under ``labels_from_folders``."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")


def image_key(path: Path, root: Path) -> str:
    """The path under ``root`` without extension, '/'-separated: the default patient id."""
    return path.relative_to(root).with_suffix("").as_posix()


def patient_id(path: Path, root: Path, regex: str | None) -> str:
    """The first group of ``regex`` on the file name (the whole match if it has no group), else ``image_key``."""
    if regex is None:
        return image_key(path, root)
    match = re.search(regex, path.name)
    if match is None:
        raise DataError(f"data.patient_id_regex={regex!r} does not match {path.name!r} ({path})")
    return match.group(1) if match.groups() else match.group(0)


@DATASETS.register("image_folder")
class ImageFolderDataModule(ImageDataModule):
    """Own 2D images as ``image`` (1, H, W) in [0, 1] and ``patient_id``; ``mask`` (1, H, W) uint8 {0, 1} with
    ``mask_suffix``, ``label`` with ``labels_from_folders``.

    With fewer than 3 patients nobody can be held out: every image is in train and validation
    reuses them, with a warning.
    """

    Config = ImageFolderConfig
    root_hint = "the folder holding your images"

    @property
    def info(self) -> DataInfo:
        """One grayscale channel described by ``data.modality``; classes from the sub-folders when asked for."""
        cfg = self.config
        return image_info(cfg, "grayscale", cfg.modality, self._class_names() if cfg.labels_from_folders else ())

    def _class_names(self) -> list[str]:
        names = list(self.config.class_names) or folder_classes(self.data_root())
        if not names:
            raise DataError(
                f"data.labels_from_folders=true but {self.config.root} has no sub-folders: put images in <root>/<class>/"
            )
        return names

    def _files(self, root: Path) -> tuple[list[Path], dict[str, Path]]:
        """The image files, and the mask files by the key of their image."""
        cfg = self.config
        suffix = cfg.mask_suffix
        is_mask = (lambda p: p.stem.endswith(suffix)) if suffix else (lambda p: False)
        masks = {image_key(p, root)[: -len(suffix)]: p for p in list_images(root, recursive=True) if is_mask(p)}
        files = list_images(root, recursive=True, patterns=cfg.pattern)
        images = [p for p in files if not is_mask(p) and not matches(p.name, cfg.exclude)]
        if not images:
            raise DataError(
                f"no image matching {list(cfg.pattern)} under {root} (excluding {list(cfg.exclude)}): check data.root"
            )
        return images, masks

    def _masks(self, image: Path, root: Path, masks: dict[str, Path]) -> tuple[Path, ...]:
        suffix = self.config.mask_suffix
        if not suffix:
            return ()
        mask = masks.get(image_key(image, root))
        if mask is None:
            raise DataError(
                f"{image} has no mask {image.stem}{suffix}.png (or .jpg) beside it (data.mask_suffix={suffix!r}): all or none"
            )
        return (mask,)

    def _label(self, image: Path, root: Path, classes: list[str]) -> int | None:
        if not self.config.labels_from_folders:
            return None
        parts = image.relative_to(root).parts
        if len(parts) < 2 or parts[0] not in classes:
            raise DataError(f"{image} is not in a class sub-folder of {root} ({classes}): data.labels_from_folders=true")
        return classes.index(parts[0])

    def _records(self, root: Path) -> list[Record]:
        """A record of every image; DataProblems naming every image without its mask, class folder or patient id."""
        cfg = self.config
        images, masks = self._files(root)
        classes = self._class_names() if cfg.labels_from_folders else []
        problems = Problems()
        records = []
        for image in images:
            with problems.collect():
                label, found = self._label(image, root, classes), self._masks(image, root, masks)
                records.append(Record(image, label, masks=found, patient_id=patient_id(image, root, cfg.patient_id_regex)))
        problems.raise_any()
        return records

    def make_splits(self) -> dict[str, ImageDataset | None]:
        """Find the images (and masks), split them by patient; with fewer than 3 patients validate on the training images."""
        cfg = self.config
        root = self.data_root()
        records = self._records(root)
        patients = {r.patient_id for r in records}
        if len(patients) >= 3:
            return self.image_splits(self.split(records, cfg.val_fraction, cfg.test_fraction, key=patient_of))
        log.warning(
            "only %d patient(s) under %s: all %d image(s) are in train and validation reuses them (no held-out patient)",
            len(patients),
            root,
            len(records),
        )
        train = self.image_splits({"train": records})["train"]
        return {"train": train, "val": train}
