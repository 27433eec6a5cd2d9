"""2D ultrasound: fetal standard planes (Burgos-Artizzu et al. 2020) and BUSI breast ultrasound (Al-Dhabyani et al. 2020).

Fetal planes, as unpacked from Zenodo (``FETAL_PLANES_ZENODO``)::

    <root>/FETAL_PLANES_DB_data.csv   semicolon-separated: Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train
    <root>/Images/<Image_name>.png

BUSI (``Dataset_BUSI_with_GT``)::

    <root>/Dataset_BUSI_with_GT/{benign,malignant,normal}/benign (1).png
                                                         /benign (1)_mask.png [, benign (1)_mask_1.png, ...]
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from lightning_ssl.data.base import DataInfo
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.images2d import ImageDataModule, ImageDataset, Record, image_info, list_images, patient_of
from lightning_ssl.data.verify import DataProblems, Problems
from lightning_ssl.errors import one_line
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import FolderDataConfig

log = logging.getLogger(__name__)

FETAL_CSV = "FETAL_PLANES_DB_data.csv"
FETAL_COLUMNS = ("Image_name", "Patient_num", "Plane", "Brain_plane", "Operator", "US_Machine", "Train")
PLANES = ("Fetal abdomen", "Fetal brain", "Fetal femur", "Fetal thorax", "Maternal cervix", "Other")
METADATA_COLUMNS = {"plane": "Plane", "brain_plane": "Brain_plane", "operator": "Operator", "us_machine": "US_Machine"}

BUSI_FOLDER = "Dataset_BUSI_with_GT"
BUSI_CLASSES = ("benign", "malignant", "normal")
BUSI_MASK_NAME = re.compile(r"^(.+)_mask(?:_\d+)?$")


@dataclass
class FetalPlanesConfig(FolderDataConfig):
    """Fetal ultrasound planes (6 classes) at ``patch_size``: the official train/test split of the CSV's ``Train`` column,
    ``val_fraction`` of the training patients held out for validation by ``split_seed``."""

    name: str = "fetal_planes"
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [224, 224])
    batch_size: int = 32
    val_fraction: float = 0.1


def fetal_folder(root: Path) -> Path:
    """The folder holding the CSV (``root`` or ``root/FETAL_PLANES_ZENODO``); DataError naming the CSV otherwise."""
    for base in (root, root / "FETAL_PLANES_ZENODO"):
        if (base / FETAL_CSV).is_file():
            return base
    raise DataError(f"{root / FETAL_CSV} is missing: expected <root>/{FETAL_CSV} and <root>/Images/<Image_name>.png")


def read_fetal_csv(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of every row of the CSV, column names and values stripped; DataError naming missing columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=";")
            header = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in FETAL_COLUMNS if c not in header]
            if missing:
                raise DataError(
                    f"{path} lacks the columns {missing} (it has {header}): expected the semicolon-separated {FETAL_CSV}"
                )
            rows = [(reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read {path}: {one_line(error)}") from None
    return [(line, row) for line, row in rows if row["Image_name"]]


def fetal_record(images: Path, line: int, row: dict[str, str], path: Path) -> tuple[Record, bool]:
    """The record of one CSV row and whether it is in the official training split."""
    plane, train = row["Plane"], row["Train"]
    if plane not in PLANES:
        raise DataError(f"{path} line {line} ({row['Image_name']}): unknown plane {plane!r}; expected one of {list(PLANES)}")
    if train not in ("0", "1"):
        raise DataError(f"{path} line {line} ({row['Image_name']}): Train is {train!r}, expected 1 (train) or 0 (test)")
    columns = {name: row[column] for name, column in METADATA_COLUMNS.items()}
    record = Record(images / f"{row['Image_name']}.png", PLANES.index(plane), patient_id=row["Patient_num"], columns=columns)
    return record, train == "1"


@DATASETS.register("fetal_planes")
class FetalPlanesDataModule(ImageDataModule):
    """Fetal ultrasound planes: ``image`` (1, H, W) in [0, 1], ``label`` (plane) and ``patient_id``.

    ``column_values`` also serves ``plane``, ``brain_plane``, ``operator`` and ``us_machine``.
    """

    Config = FetalPlanesConfig
    root_hint = f"the folder holding {FETAL_CSV} and Images/"

    @property
    def info(self) -> DataInfo:
        """One B-mode ultrasound channel, grey levels / 255, six planes."""
        return image_info(self.config, "ultrasound", "ultrasound (fetal, B-mode)", [p.lower() for p in PLANES])

    def make_splits(self) -> dict[str, ImageDataset | None]:
        """Read the CSV, check every listed image exists, keep the official test split, hold out val patients."""
        cfg = self.config
        base = fetal_folder(self.data_root())
        path = base / FETAL_CSV
        problems = Problems()
        rows = []
        for line, row in read_fetal_csv(path):
            with problems.collect():
                rows.append(fetal_record(base / "Images", line, row, path))
        problems.lines.extend(f"{r.image} is listed in {path} but missing" for r, _ in rows if not r.image.is_file())
        problems.raise_any()
        if not rows:
            raise DataError(f"{path} lists no images")
        train, test = [r for r, is_train in rows if is_train], [r for r, is_train in rows if not is_train]
        if not train:
            raise DataError(f"{path} puts no image in the training split (column Train = 1)")
        return self.image_splits({**self.split(train, cfg.val_fraction, 0.0, key=patient_of), "test": test})


@dataclass
class BUSIConfig(FolderDataConfig):
    """BUSI breast ultrasound (benign, malignant, normal) with lesion masks at ``patch_size``, split by image by ``split_seed``.

    ``with_masks``: true reads every image's mask (classification and segmentation; an image without one is an
    error); false reads no mask (classification only, e.g. a copy without mask files); None (auto): true when any
    image has a mask file, false when none has.
    """

    name: str = "busi"
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [256, 256])
    batch_size: int = 16
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    with_masks: Optional[bool] = None


def busi_folder(root: Path) -> Path:
    """The folder holding the class folders (``root/Dataset_BUSI_with_GT`` or ``root``); DataError explaining the layout."""
    for base in (root / BUSI_FOLDER, root):
        if all((base / name).is_dir() for name in BUSI_CLASSES):
            return base
    raise DataError(f"no {BUSI_FOLDER}/{{benign,malignant,normal}} folders under {root}: expected the BUSI download, unpacked")


def busi_images(folder: Path) -> list[tuple[Path, tuple[Path, ...]]]:
    """The images of one class folder, each with its mask files (none when it has none); masks without an image are
    left out with a warning."""
    images, masks = [], {}
    for path in list_images(folder):
        match = BUSI_MASK_NAME.match(path.stem)
        if match:
            masks.setdefault(match.group(1), []).append(path)
        else:
            images.append(path)
    found = [(image, tuple(sorted(masks.pop(image.stem, []), key=lambda p: (len(p.name), p.name)))) for image in images]
    if masks:
        log.warning("%d BUSI mask(s) in %s have no image, e.g. %s", len(masks), folder, next(iter(masks.values()))[0].name)
    return found


def busi_records(base: Path, with_masks: bool | None) -> list[Record]:
    """A record of every image under the class folders, with its masks when ``with_masks`` (None: when any image has
    one); DataProblems naming every image without a mask, or one line when no image has any."""
    found = [(label, image, masks) for label, name in enumerate(BUSI_CLASSES) for image, masks in busi_images(base / name)]
    if not found:
        raise DataError(f"no images in {base}/{{benign,malignant,normal}}: expected e.g. benign/benign (1).png")
    without = [image for _, image, masks in found if not masks]
    if with_masks is None:
        with_masks = len(without) < len(found)
        if not with_masks:
            log.warning("no BUSI image under %s has a mask file: classification only (no segmentation)", base)
    if with_masks and len(without) == len(found):
        raise DataError(
            f"no image under {base} has a mask file ({len(found)} images): this BUSI copy supports classification only, "
            f"set data.with_masks=false"
        )
    if with_masks and without:
        raise DataProblems(
            [f"{image} has no mask: expected {image.stem}_mask.png beside it (data.with_masks=false reads no mask)" for image in without]
        )
    return [Record(image, label, masks=masks if with_masks else ()) for label, image, masks in found]


@DATASETS.register("busi")
class BUSIDataModule(ImageDataModule):
    """BUSI: ``image`` (1, H, W) in [0, 1], ``label`` and (unless ``with_masks`` is false) ``mask`` (1, H, W) uint8
    {0, 1}, the union of an image's masks.

    BUSI does not say which images come from the same woman (780 images of 600 women), so the split
    is by image and an image of one woman may share her other images' split or not; items carry no
    ``patient_id`` (so BYOL's patient-metadata head turns itself off).
    """

    Config = BUSIConfig
    root_hint = f"the folder holding {BUSI_FOLDER}/"

    @property
    def info(self) -> DataInfo:
        """One B-mode ultrasound channel, grey levels / 255, three classes."""
        return image_info(self.config, "ultrasound", "ultrasound (breast, B-mode)", BUSI_CLASSES)

    def make_splits(self) -> dict[str, ImageDataset | None]:
        """Pair images with masks (when asked for), split by image."""
        cfg = self.config
        records = busi_records(busi_folder(self.data_root()), cfg.with_masks)
        return self.image_splits(self.split(records, cfg.val_fraction, cfg.test_fraction, key=lambda r: str(r.image)))
