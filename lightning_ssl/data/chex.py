r"""CheX: the Kermany et al. (Cell 2018) pediatric chest X-rays, normal vs pneumonia, split by patient.

Layout as unpacked from the official download (Mendeley "ChestXRay2017" or the Kaggle copy)::

    <root>/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg

``root`` may also be the ``chest_xray`` folder itself; ``val`` is optional (the Mendeley copy has none).

Patient ids come from the file names (the regexes below, matched against the name without extension):

- pneumonia ``person1_bacteria_1``, ``person1_virus_6``, ``person447_virus_921_1`` -> ``person1`` / ``person447``
  (and the type, bacteria or virus): ``PNEUMONIA_NAME = ^(person\d+)_(bacteria|virus)_\d+(?:_\d+)?$``
- normal ``IM-0115-0001``, ``IM-0429-0001-0002`` -> ``IM-0115`` / ``IM-0429``, ``NORMAL2-IM-0027-0001``,
  ``NORMAL2-IM-0173-0001-0001`` -> ``NORMAL2-IM-0027`` / ``NORMAL2-IM-0173``:
  ``NORMAL_NAME = ^((?:NORMAL2-)?IM-\d+)(?:-\d+){1,2}$`` (some names carry a third number)

A name matching neither is its own patient (its file name without extension), with one warning.

The download numbers patients once across its folders: a ``personN`` of ``test`` with other image numbers is also in
``train`` (170 children of the 224 x 224 copy), so ``drop_test_patients`` leaves such children's train/val images out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning_ssl.data.base import DataInfo
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.images2d import ImageDataModule, Record, image_info, list_images, patient_of
from lightning_ssl.data.verify import Problems
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import ConfigError, FolderDataConfig

log = logging.getLogger(__name__)

PNEUMONIA_NAME = re.compile(r"^(person\d+)_(bacteria|virus)_\d+(?:_\d+)?$", re.IGNORECASE)
NORMAL_NAME = re.compile(r"^((?:NORMAL2-)?IM-\d+)(?:-\d+){1,2}$", re.IGNORECASE)
CLASS_FOLDERS = ("NORMAL", "PNEUMONIA")
CLASS_NAMES = {"binary": ("normal", "pneumonia"), "three": ("normal", "bacteria", "virus")}
LAYOUT = "<root>/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg"


@dataclass
class CheXConfig(FolderDataConfig):
    """Kermany chest X-rays at ``patch_size``; ``classes`` binary (normal, pneumonia) or three (normal, bacteria, virus).

    The official val split holds 16 images, so by default train+val are re-split by patient
    (``val_fraction`` of the patients, by ``split_seed``) and the official test is the test split;
    ``official_val=true`` keeps the official train/val instead. ``drop_test_patients``: leave out of train and val
    the images of children who also have images in the official test (false keeps them, with a warning).
    """

    name: str = "chex"
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [224, 224])
    batch_size: int = 32
    classes: str = "binary"
    official_val: bool = False
    val_fraction: float = 0.1
    drop_test_patients: bool = True


def patient_and_kind(stem: str) -> tuple[str | None, str | None]:
    """(patient id, pneumonia type or None) from a file name without extension; (None, None) when no pattern matches."""
    match = PNEUMONIA_NAME.match(stem)
    if match:
        return match.group(1), match.group(2).lower()
    match = NORMAL_NAME.match(stem)
    return (match.group(1), None) if match else (None, None)


def chest_xray_folder(root: Path) -> Path:
    """The folder holding ``train`` (``root/chest_xray`` or ``root`` itself); DataError explaining the layout otherwise."""
    for base in (root / "chest_xray", root):
        if (base / "train").is_dir():
            return base
    raise DataError(f"no chest_xray/train folder under {root}: expected {LAYOUT} (the Kermany chest X-ray download, unpacked)")


@DATASETS.register("chex")
class CheXDataModule(ImageDataModule):
    """Chest X-rays as ``image`` (1, H, W) in [0, 1], ``label`` and ``patient_id``; no patient in two splits."""

    Config = CheXConfig
    root_hint = f"the Kermany chest X-ray download, unpacked: {LAYOUT}"

    @property
    def info(self) -> DataInfo:
        """One X-ray channel, grey levels / 255, the classes of ``data.classes``."""
        return image_info(self.config, "X-ray", "X-ray (chest, pediatric)", self._class_names())

    def _class_names(self) -> tuple[str, ...]:
        if self.config.classes not in CLASS_NAMES:
            raise ConfigError(f"data.classes={self.config.classes!r} is not one of {', '.join(CLASS_NAMES)}")
        return CLASS_NAMES[self.config.classes]

    def _label(self, folder: str, kind: str | None, path: Path) -> int:
        if folder == "NORMAL":
            return 0
        if self.config.classes == "binary":
            return 1
        if kind is None:
            raise DataError(f"{path.name} in {path.parent} does not say bacteria or virus: use data.classes=binary")
        return 1 if kind == "bacteria" else 2

    def _records(self, split_folder: Path, unmatched: list[str], problems: Problems) -> list[Record]:
        records = []
        for folder in CLASS_FOLDERS:
            class_folder = split_folder / folder
            if not class_folder.is_dir():
                raise DataError(f"{class_folder} is missing: expected {LAYOUT}")
            for path in list_images(class_folder):
                patient, kind = patient_and_kind(path.stem)
                if patient is None:
                    unmatched.append(path.name)
                with problems.collect():
                    records.append(Record(path, self._label(folder, kind, path), patient_id=patient or path.stem))
        if not records:
            raise DataError(f"no images in {split_folder}/{{NORMAL,PNEUMONIA}}: expected {LAYOUT}")
        return records

    def _read_layout(self) -> dict[str, list[Record]]:
        base = chest_xray_folder(self.data_root())
        unmatched: list[str] = []
        problems = Problems()
        found = {split: self._records(base / split, unmatched, problems) for split in ("train", "val", "test") if (base / split).is_dir()}
        problems.raise_any()
        if unmatched:
            log.warning(
                "%d CheX file name(s) match neither personN_(bacteria|virus)_M nor (NORMAL2-)IM-NNNN-MMMM (e.g. %s): "
                "each is its own patient",
                len(unmatched),
                unmatched[0],
            )
        if "test" not in found:
            log.warning("no %s folder: this CheX copy has no test split", base / "test")
        return found

    def _official_val(self, found: dict[str, list[Record]]) -> tuple[list[Record], list[Record]]:
        if "val" not in found:
            raise DataError("data.official_val=true but this CheX copy has no chest_xray/val folder: set data.official_val=false")
        shared = {r.patient_id for r in found["train"]} & {r.patient_id for r in found["val"]}
        if shared:
            log.warning("the official CheX train and val splits share %d patient(s), e.g. %s", len(shared), min(shared))
        return found["train"], found["val"]

    def _without_test_patients(self, found: dict[str, list[Record]]) -> dict[str, list[Record]]:
        """``found`` with the train/val images of patients of the official test left out (or kept, with a warning)."""
        test = {r.patient_id for r in found.get("test", [])}
        shared = sorted({r.patient_id for split in ("train", "val") for r in found.get(split, []) if r.patient_id in test})
        if not shared:
            return found
        if not self.config.drop_test_patients:
            log.warning(
                "%d CheX patient(s) have images in both the official test and train/val (e.g. %s): "
                "data.drop_test_patients=true leaves them out of train/val",
                len(shared),
                shared[0],
            )
            return found
        kept = {split: [r for r in records if split == "test" or r.patient_id not in test] for split, records in found.items()}
        dropped = sum(len(found[s]) - len(kept[s]) for s in found)
        log.warning(
            "%d train/val image(s) of %d CheX patient(s) who also have test images (e.g. %s) are left out, so no child is "
            "on both sides of the test (data.drop_test_patients=false keeps them)",
            dropped,
            len(shared),
            shared[0],
        )
        return kept

    def check_config(self) -> None:
        """2D images, and a known ``data.classes``."""
        super().check_config()
        self._class_names()

    def make_splits(self) -> dict[str, Any]:
        """Find the images, read patients and classes from the names, split train+val by patient."""
        cfg = self.config
        found = self._without_test_patients(self._read_layout())
        if cfg.official_val:
            train, val = self._official_val(found)
        else:
            splits = self.split(found["train"] + found.get("val", []), cfg.val_fraction, 0.0, key=patient_of)
            train, val = splits["train"], splits["val"]
        return self.image_splits({"train": train, "val": val, "test": found.get("test", [])})
