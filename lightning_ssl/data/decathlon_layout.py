"""What a Medical Segmentation Decathlon / nnU-Net raw folder holds: ``dataset.json`` (channels, label values, case
entries) and each case's files, found and checked (files present, headers of one grid, label values listed) with one
problem line naming the file for each fault."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from lightning_ssl.data.errors import DataError
from lightning_ssl.errors import one_line
from lightning_ssl.metrics.brats_labels import label_values

NIFTI = (".nii.gz", ".nii")


def stem(path: Path) -> str:
    """A NIfTI file name without its extension."""
    return next((path.name[: -len(ext)] for ext in NIFTI if path.name.endswith(ext)), path.stem)


@dataclass
class Case:
    """One case: its image file(s) (one 3D or 4D file, or one file per channel), label map if any, patient, and
    ``role``: ``training`` (``imagesTr``), ``test`` (``imagesTs`` with ``labelsTs``) or ``pool`` (``imagesTs`` alone)."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None
    role: str
    patient_id: str = ""

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file of the case."""
        return (*self.images, *([self.label] if self.label else []))


@dataclass
class Description:
    """What ``dataset.json`` says: its name, the channels' modalities, the label values and names, and its raw case
    entries (``training``: dicts of relative paths; ``test``: relative image paths; None: find the files)."""

    path: Path
    name: str
    channels: list[str]
    labels: dict[int, str]
    training: list[dict[str, str]] | None
    test: list[str] | None
    file_ending: str


def _numbered(mapping: Any, key: str, path: Path) -> list[str]:
    if not isinstance(mapping, dict) or not mapping or not all(re.fullmatch(r"\d+", str(k)) for k in mapping):
        raise DataError(f"{path}: {key!r} must map channel numbers to modalities, e.g. {{\"0\": \"CT\"}}")
    return [str(mapping[k]) for k in sorted(mapping, key=int)]


def _label_values(mapping: Any, path: Path) -> dict[int, str]:
    """MSD/v1 ``{"0": "background"}`` or v2 ``{"background": 0}`` as value -> name."""
    if not isinstance(mapping, dict) or not mapping:
        raise DataError(f"{path}: 'labels' must map label values to names, e.g. {{\"0\": \"background\", \"1\": \"tumour\"}}")
    if all(re.fullmatch(r"\d+", str(k)) for k in mapping):
        return {int(k): str(v) for k, v in mapping.items()}
    if all(isinstance(v, int) for v in mapping.values()):
        return {int(v): str(k) for k, v in mapping.items()}
    raise DataError(f"{path}: 'labels' holds region lists or non-integer values; only integer label maps can be read")


def read_description(root: Path) -> Description:
    """``root/dataset.json`` read; DataError naming the file and the key when it is absent or malformed."""
    path = root / "dataset.json"
    if not path.is_file():
        raise DataError(f"{path} does not exist: data.root must be the folder holding dataset.json, imagesTr/ and labelsTr/")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {one_line(error)}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} must hold a JSON object")
    channels_key = "modality" if "modality" in raw else "channel_names"
    if channels_key not in raw:
        raise DataError(f"{path} has neither 'modality' nor 'channel_names': name each channel, e.g. {{\"0\": \"CT\"}}")
    if "labels" not in raw:
        raise DataError(f"{path} has no 'labels': give the label values and names, e.g. {{\"0\": \"background\", \"1\": \"tumour\"}}")
    ending = str(raw.get("file_ending", ".nii.gz"))
    if ending not in NIFTI:
        raise DataError(f"{path}: file_ending {ending!r} is not NIfTI; only .nii.gz and .nii files are read")
    training, test = raw.get("training"), raw.get("test")
    if training is not None and not (isinstance(training, list) and all(isinstance(e, dict) and "image" in e for e in training)):
        raise DataError(f"{path}: 'training' must list {{\"image\": ..., \"label\": ...}} pairs")
    if test is not None and not (isinstance(test, list) and all(isinstance(e, (str, dict)) for e in test)):
        raise DataError(f"{path}: 'test' must list image paths")
    test_paths = None if test is None else [e["image"] if isinstance(e, dict) else e for e in test]
    return Description(path, str(raw.get("name", root.name)), _numbered(raw[channels_key], channels_key, path),
                       _label_values(raw["labels"], path), training, test_paths, ending)


def image_files(listed: Path, channels: int) -> tuple[Path, ...] | None:
    """The file(s) of a listed image: itself, else one file per channel (``<stem>_0000.nii.gz``...); None if absent."""
    if listed.is_file():
        return (listed,)
    ending = next((ext for ext in NIFTI if listed.name.endswith(ext)), ".nii.gz")
    per_channel = tuple(listed.with_name(f"{stem(listed)}_{k:04d}{ending}") for k in range(channels))
    return per_channel if all(p.is_file() for p in per_channel) else None


def _missing(path: Path, case: str, description: Description) -> str:
    return f"{path} is missing ({description.path.name} lists it for case {case}): restore the file or remove the case from {description.path.name}"


def _case(root: Path, description: Description, image: str, label: str | None, role: str, problems: list[str]) -> Case | None:
    """The case of one image (and label) path relative to ``root``; None with a problem when a file is missing."""
    listed = root / image
    case_id = stem(listed)
    files = image_files(listed, len(description.channels))
    if files is None:
        problems.append(_missing(listed, case_id, description))
        return None
    label_path = root / label if label else None
    if label_path is not None and not label_path.is_file():
        problems.append(_missing(label_path, case_id, description))
        return None
    return Case(case_id, files, label_path, role)


def _v2_training(root: Path, description: Description) -> list[tuple[str, str]]:
    """nnU-Net v2: (image, label) relative paths of every label map in labelsTr."""
    ending = description.file_ending
    labels = sorted((root / "labelsTr").glob(f"*{ending}"))
    return [(f"imagesTr/{p.name[: -len(ending)]}{ending}", f"labelsTr/{p.name}") for p in labels]


def _test_images(root: Path, description: Description) -> list[str]:
    """The test images: listed in dataset.json, else found in imagesTs (per-channel files grouped by case)."""
    if description.test is not None:
        return description.test
    ending = description.file_ending
    names = sorted(p.name for p in (root / "imagesTs").glob(f"*{ending}"))
    grouped = dict.fromkeys(re.sub(rf"_\d{{4}}{re.escape(ending)}$", ending, n) for n in names)
    return [f"imagesTs/{n}" for n in grouped]


def find_cases(root: Path, description: Description) -> tuple[list[Case], list[str]]:
    """Every case dataset.json lists (or its folders hold), sorted by id, and one problem line per missing file."""
    problems: list[str] = []
    if description.training is None:
        pairs = _v2_training(root, description)
    else:
        pairs = [(e["image"], e.get("label")) for e in description.training]
    cases = [_case(root, description, image, label, "training", problems) for image, label in pairs]
    labelled_test = (root / "labelsTs").is_dir()
    for image in _test_images(root, description):
        label = f"labelsTs/{Path(image).name}" if labelled_test else None
        cases.append(_case(root, description, image, label, "test" if labelled_test else "pool", problems))
    found = sorted((c for c in cases if c is not None), key=lambda c: c.case_id)
    if not found and not problems:
        raise DataError(f"{description.path} lists no case and {root / 'labelsTr'} holds none: nothing to read")
    return found, problems


def patient_of(case: Case, regex: str | None) -> str:
    """The patient of a case: ``regex``'s first group (else its match) on the image's file name, else the case id."""
    if regex is None:
        return case.case_id
    match = re.search(regex, case.images[0].name)
    if match is None:
        raise DataError(f"data.patient_regex={regex!r} does not match {case.images[0]}: fix the pattern or unset it")
    return match.group(1) if match.groups() else match.group(0)


def _header_shape(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as error:  # nibabel raises many types for foreign or cut-short files
        raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and a NIfTI volume?)") from None


def shape_text(shape: Sequence[int]) -> str:
    """A shape as printed in messages, e.g. ``51x51x51``."""
    return "x".join(map(str, shape))


def check_headers(case: Case, channels: int) -> None:
    """DataError naming the file unless the image holds ``channels`` channels of one 3D grid and the label map is 3D on
    that grid (read from the headers only)."""
    shapes = [_header_shape(p) for p in case.images]
    if len(case.images) > 1:
        if any(len(s) != 3 for s in shapes) or len(set(shapes)) > 1:
            listed = ", ".join(f"{p.name} {shape_text(s)}" for p, s in zip(case.images, shapes))
            raise DataError(f"case {case.case_id}: its channel files must be 3D volumes of one shape ({listed})")
        grid = shapes[0]
    else:
        shape = shapes[0]
        if len(shape) == 3 and channels == 1:
            grid = shape
        elif len(shape) == 4 and shape[3] == channels:
            grid = shape[:3]
        else:
            raise DataError(
                f"{case.images[0]} is {shape_text(shape)} but dataset.json names {channels} channel(s): expected a 3D "
                f"volume for one channel, a 4D one with the channels last, or one file per channel"
            )
    if case.label is not None:
        label = _header_shape(case.label)
        if label != grid:
            raise DataError(
                f"{case.label} is {shape_text(label)} but its image {case.images[0]} is {shape_text(grid)}: "
                f"a label map must lie on its image's grid"
            )


def read_voxels(path: Path) -> np.ndarray:
    """The voxel array of a NIfTI file; DataError naming the file when it cannot be read."""
    try:
        return np.asanyarray(nib.load(str(path)).dataobj)
    except Exception as error:  # nibabel, gzip and zlib raise many types for a file cut short
        raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and a NIfTI volume?)") from None


def check_label_values(label: np.ndarray, path: Path, allowed: dict[int, str]) -> None:
    """DataError naming the file when the label map holds values dataset.json does not list."""
    values = label_values(label)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        listed = ", ".join(f"{k} {name}" for k, name in sorted(allowed.items()))
        raise DataError(f"{path} holds label value(s) {unknown} that dataset.json does not list ({listed}): fix the file or dataset.json")


def check_voxels(case: Case, allowed: dict[int, str]) -> None:
    """Read every voxel of a case: DataError naming a file that is cut short or holds NaN, or a label map holding
    values dataset.json does not list."""
    for path in case.images:
        voxels = read_voxels(path)
        if voxels.dtype.kind == "f" and not np.isfinite(voxels).all():
            raise DataError(f"{path} holds NaN or infinite voxels: fix or exclude the case")
    if case.label is not None:
        check_label_values(read_voxels(case.label), case.label, allowed)
