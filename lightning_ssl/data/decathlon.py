"""Medical Segmentation Decathlon and nnU-Net raw data: ``dataset.json`` beside ``imagesTr/``, ``labelsTr/`` and
optionally ``imagesTs/`` (with ``labelsTs/``: the test split), any modality, one or several channels.

``dataset.json`` names the channels (``modality`` in MSD and nnU-Net v1, ``channel_names`` in nnU-Net v2), the label
values (``labels``: ``{"0": "background"}``, or v2's ``{"background": 0}``) and the cases: MSD's ``training`` image/label
pairs and ``test`` images (a multi-channel image is one 4D NIfTI, channels last, or one file per channel
``<case>_0000.nii.gz``, ``<case>_0001.nii.gz``...); without ``training`` (nnU-Net v2) the cases are the files of
``labelsTr/``. Each case is one patient unless ``data.patient_regex`` reads the patient from the image's file name.

Cases are read through MONAI (resampled to ``data.spacing`` when set), normalised per channel to [0, 1] by modality
(CT: HU window; others: the MRI normalisation over non-zero voxels; ``data.intensity=none``: already in [0, 1]), padded
(MONAI ``SpatialPad``) up to the patch, and cached as ``data.cache`` says. Training items are patches, a
``foreground_fraction`` of them centred on a random voxel of the label's foreground and the others on a random
background voxel (what MONAI's ``RandCropByPosNegLabeld`` chooses), drawn from ``item_rng``. A method that scores
whole volumes (fine-tuned segmentation, by sliding windows) gets every validation and test case whole, one per batch;
the others get patches fixed by ``data.split_seed``.

Case-level classes (``data.case_labels``: a CSV table, see ``case_labels.py``) make classification data: its items are
patches centred on the foreground (the lesion the class describes), or anywhere in the body without one, at the
training voxel size, never resized, so the encoder sees what it was pretrained on; validation and test cases are those
with a class. Cases without a class stay in the training split for pretraining; budgets draw from classified cases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Optional

import nibabel as nib
import numpy as np
import torch
from monai.data import Dataset as MonaiDataset
from monai.transforms import LoadImage, Spacing, SpatialPad, Transform
from torch.utils.data import DataLoader, Dataset

from lightning_ssl.data.base import (
    BaseDataModule,
    WithoutLabels,
    body_box,
    cached_dataset,
    check_patch_size,
)
from lightning_ssl.data.budget import UNKNOWN_LABEL, labeled_subset
from lightning_ssl.data.case_labels import CaseLabelTable, LabelRule, label_rule
from lightning_ssl.data.decathlon_layout import (
    Case,
    Description,
    check_headers,
    check_label_values,
    check_voxels,
    find_cases,
    patient_of,
    read_description,
    read_voxels,
    shape_text,
)
from lightning_ssl.data.disk_cache import ArrayCache, cache_folder
from lightning_ssl.data.errors import DataError, data_errors
from lightning_ssl.data.intensity import (
    MRI_NORMALISATIONS,
    ct_body_mask,
    intensity_of,
    normalise_mri,
    window_hu,
)
from lightning_ssl.data.patches import PatchDataset, TargetFraction, Volume
from lightning_ssl.data.verify import FileCheck, Problems, verify_files
from lightning_ssl.errors import one_line
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import Choice, ConfigError, DataInfo, FolderDataConfig
from lightning_ssl.metrics.brats_labels import label_values

log = logging.getLogger(__name__)

MAX_FOREGROUND_CENTRES = 100_000
CASE_FORMAT = 1
"""Bumped when what a loaded case holds changes, so disk-cache entries of an older layout are made again."""


class Intensity(Choice):
    """How voxels become [0, 1]: by each channel's modality (auto), or as stored (none)."""

    auto = "auto"
    none = "none"


@dataclass
class DecathlonConfig(FolderDataConfig):
    """A Medical Segmentation Decathlon / nnU-Net raw folder: root holds dataset.json.

    ``val_fraction``: the share of patients drawn by split_seed for validation. ``test_fraction``: the share drawn for
    test (unused when labelsTs gives the test split). ``patient_regex``: reads the patient from an image's file name
    (its first group, else the whole match) so that a patient's cases share a split; unset, each case is a patient.
    ``intensity``: auto (CT channels by hu_window, the others by mri_normalisation) or none (data already in [0, 1]).
    ``hu_window``: the HU range of CT channels scaled to [0, 1]. ``mri_normalisation``: zscore or minmax over the
    non-zero voxels of every other channel, then [0, 1]. ``body_threshold``: HU above which CT voxels are the body
    that patches are taken from. ``spacing``: resample every case to these voxel sizes in mm (MONAI Spacing); unset,
    cases keep theirs. ``patches_per_case``: training patches cut from each case per epoch. ``foreground_fraction``:
    the share of training patches centred on a foreground voxel of the label map (the others on background).
    ``case_labels``: a CSV table (relative to root) giving cases a class. ``case_column``: its column naming the case
    (the image file name without extension). ``label_column``: its column holding each case's value.
    ``label_map``: table value to class, e.g. {1: 0, 2: 0, 3: 0, 4: 1, 5: 1} (quoted on a shell command line).
    ``label_threshold``: a value at or above it is class 1, below class 0 (without a map or a threshold, each value is
    a class). ``class_names``: the names of the classes (default: from the map, the threshold or the values).
    """

    name: str = "decathlon"
    patch_size: list[int] = field(default_factory=lambda: [64, 64, 64])
    batch_size: int = 2
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    patient_regex: Optional[str] = None
    intensity: Intensity = Intensity.auto
    hu_window: list[float] = field(default_factory=lambda: [-1000.0, 1000.0])
    mri_normalisation: str = "zscore"
    body_threshold: float = -500.0
    spacing: Optional[list[float]] = None
    patches_per_case: int = 2
    foreground_fraction: float = 0.5
    case_labels: Optional[str] = None
    case_column: str = "case"
    label_column: Optional[str] = None
    label_map: Any = None
    label_threshold: Optional[float] = None
    class_names: Optional[list[str]] = None


def is_ct(modality: str) -> bool:
    """Whether a channel is CT (HU windowed); every other modality is normalised as MRI (as nnU-Net does)."""
    return modality.strip().upper() == "CT"


@dataclass(frozen=True)
class CaseSettings:
    """Everything that shapes a loaded case; part of its cache key."""

    modalities: tuple[str, ...]
    labels: tuple[int, ...]
    intensity: str
    hu_window: tuple[float, float]
    mri_normalisation: str
    body_threshold: float
    spacing: tuple[float, ...] | None
    extent: tuple[int, int, int]


def _read(files: Sequence[Path], spacing: tuple[float, ...] | None, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Voxels (C, X, Y, Z) float32 and spacing of one or several files (as channels), resampled to ``spacing``."""
    try:
        image = LoadImage(reader="NibabelReader", image_only=True, ensure_channel_first=True)([str(f) for f in files])
        if spacing is not None:
            image = Spacing(pixdim=spacing, mode=mode)(image)
    except Exception as error:  # MONAI wraps the readers' many error types
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise DataError(f"cannot read {files[0]}: {one_line(cause)} (is the file complete and a NIfTI volume?)") from None
    return np.asarray(image, dtype=np.float32), np.asarray(image.pixdim, dtype=np.float32)[:3]


def normalise(image: np.ndarray, settings: CaseSettings, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """The channels in [0, 1] by modality, and the body (where patch centres may fall)."""
    if settings.intensity == Intensity.none:
        low, high = float(image.min()), float(image.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise DataError(
                f"{source} holds values in [{low:.4g}, {high:.4g}], not [0, 1]: data.intensity=none is for data already "
                f"scaled to [0, 1]; use data.intensity=auto"
            )
        return np.clip(image, 0.0, 1.0), np.ones(image.shape[1:], dtype=bool)
    out = np.empty_like(image)
    body = np.zeros(image.shape[1:], dtype=bool)
    for k, (channel, modality) in enumerate(zip(image, settings.modalities)):
        if is_ct(modality):
            out[k] = window_hu(channel, settings.hu_window)
            body |= ct_body_mask(channel, settings.body_threshold)
        else:
            out[k] = normalise_mri(channel[None], settings.mri_normalisation)[0]
            body |= channel != 0
    return out, body


def foreground_voxels(foreground: np.ndarray) -> np.ndarray:
    """The voxels (K, 3) of the foreground, at most ``MAX_FOREGROUND_CENTRES`` of them (an even random share, fixed):
    where foreground patches are centred, kept small for large organs."""
    voxels = np.argwhere(foreground).astype(np.int32)
    if len(voxels) > MAX_FOREGROUND_CENTRES:
        keep = np.random.default_rng(0).choice(len(voxels), MAX_FOREGROUND_CENTRES, replace=False)
        voxels = voxels[np.sort(keep)]
    return voxels


class LoadCase(Transform):
    """A case item (file names) -> ``image`` (C, X, Y, Z) in [0, 1], ``mask`` (1, X, Y, Z) uint8 when labelled,
    ``centres`` (X, Y, Z) where background patches are centred and their ``box``, ``foreground`` voxels (K, 3),
    ``spacing`` (3,); padded to ``extent``. With a ``disk`` cache each case is decoded once and read back later."""

    def __init__(self, settings: CaseSettings, disk: ArrayCache | None = None) -> None:
        self.settings = settings
        self.disk = disk

    def decode(self, item: dict[str, Any]) -> dict[str, np.ndarray]:
        """Read, resample, check, normalise and pad one case."""
        settings, files = self.settings, [Path(f) for f in item["images"]]
        raw, spacing = _read(files, settings.spacing, "bilinear")
        if not np.isfinite(raw).all():
            raise DataError(f"{files[0]} holds NaN or infinite voxels: fix or exclude the case")
        image, body = normalise(raw, settings, files[0])
        arrays = {"spacing": spacing}
        foreground = np.zeros(body.shape, dtype=bool)
        if "label" in item:
            label, _ = _read([Path(item["label"])], settings.spacing, "nearest")
            if label.shape[1:] != image.shape[1:]:
                raise DataError(f"{item['label']} is {shape_text(label.shape[1:])} but its image {files[0]} is {shape_text(image.shape[1:])}")
            label = np.rint(label)
            check_label_values(label, Path(item["label"]), dict.fromkeys(settings.labels, ""))
            arrays["mask"] = label.astype(np.uint8)
            foreground = arrays["mask"][0] > 0
        centres = body & ~foreground
        centres = centres if centres.any() else (body if body.any() else np.ones_like(body))
        pad = SpatialPad(settings.extent, value=0)
        arrays["image"] = np.asarray(pad(image), dtype=np.float32)
        arrays["centres"] = np.asarray(pad(centres[None]), dtype=bool)[0]
        arrays["box"] = np.stack(body_box(arrays["centres"]))
        if "mask" in arrays:
            arrays["mask"] = np.asarray(pad(arrays["mask"]), dtype=np.uint8)
        arrays["foreground"] = foreground_voxels(arrays["mask"][0] > 0) if "mask" in arrays else np.zeros((0, 3), np.int32)
        return arrays

    def __call__(self, item: dict[str, Any]) -> dict[str, np.ndarray]:
        """The case's arrays, decoded or from the disk cache."""
        if self.disk is None:
            return self.decode(item)
        sources = [*item["images"], *([item["label"]] if "label" in item else [])]
        return self.disk.arrays(sources, f"{CASE_FORMAT}|{self.settings!r}", lambda: self.decode(item))


class CaseVolumes(Sequence[Volume]):
    """The cases as volumes to cut patches from, read (or taken from the cache) on access."""

    def __init__(self, cases: Sequence[Case], store: Dataset) -> None:
        self.cases = list(cases)
        self.store = store

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> Volume:  # type: ignore[override]
        case = self.cases[index]
        with data_errors():
            arrays = self.store[index]
        return Volume(
            case.patient_id, arrays["image"], arrays["centres"], arrays.get("mask"), targets=arrays["foreground"],
            spacing=arrays["spacing"], source=str(case.images[0]), box=(arrays["box"][0], arrays["box"][1]),
        )


def _with_class(item: dict[str, Any], label: int | None) -> dict[str, Any]:
    if label is not None:
        item["label"] = torch.tensor(label, dtype=torch.int64)
    return item


class CasePatches(PatchDataset):
    """Patches of cases (see ``PatchDataset``) that carry their case's class as ``label`` when it has one."""

    def __init__(self, volumes: CaseVolumes, classes: Sequence[int | None], **kwargs: Any) -> None:
        super().__init__(volumes, patient_ids=[c.patient_id for c in volumes.cases], **kwargs)
        self.sources = [str(c.images[0]) for c in volumes.cases]
        self.classes = list(classes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _with_class(super().__getitem__(index), self.classes[int(index) // self.per_volume])

    def class_labels(self) -> list[int] | None:
        """Each item's case class (-1: none), None when no case has one."""
        if all(c is None for c in self.classes):
            return None
        return [UNKNOWN_LABEL if c is None else c for c in self.classes for _ in range(self.per_volume)]


class WholeCases(Dataset):
    """Each case whole (padded up to the patch): ``image`` (C, X, Y, Z), ``mask``, ``label`` (its class), ``patient_id``
    and ``meta`` (spacing), for a method that scores whole volumes."""

    def __init__(self, volumes: CaseVolumes, classes: Sequence[int | None]) -> None:
        self.volumes = volumes
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        volume = self.volumes[int(index)]
        item: dict[str, Any] = {"image": torch.tensor(volume.image), "patient_id": volume.patient_id}
        if volume.mask is not None:
            item["mask"] = torch.tensor(volume.mask)
        item["meta"] = {"spacing": torch.as_tensor(volume.spacing, dtype=torch.float32)}
        return _with_class(item, self.classes[int(index)])

    def item_source(self, index: int) -> str:
        """The image file of item ``index``."""
        return str(self.volumes.cases[index].images[0])

    def column_values(self, column: str) -> list[str] | None:
        """The patient of every item for ``patient_id``."""
        return [c.patient_id for c in self.volumes.cases] if column == "patient_id" else None


@DATASETS.register("decathlon")
class DecathlonDataModule(BaseDataModule):
    """Medical Segmentation Decathlon / nnU-Net raw data: 3D patches (or 2D slices) of any modality, whole volumes for
    sliding-window scoring, patient-level splits, optional case classes from a table."""

    Config = DecathlonConfig
    root_hint = "the folder holding dataset.json, imagesTr/ and labelsTr/ (Medical Segmentation Decathlon or nnU-Net raw layout)"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._description: Description | None = None
        self._table: CaseLabelTable | None = None
        self._rule: LabelRule | None = None
        self.cases: list[Case] = []
        self.classes: dict[str, int] = {}
        self.case_splits: dict[str, str] = {}

    def description(self) -> Description:
        """What ``dataset.json`` says, read once."""
        if self._description is None:
            self._description = read_description(self.data_root())
        return self._description

    def table(self) -> CaseLabelTable | None:
        """The case table of ``data.case_labels``, read once; None without one."""
        cfg = self.config
        if cfg.case_labels is None:
            return None
        if self._table is None:
            if not cfg.label_column:
                raise ConfigError("data.case_labels needs data.label_column: the column holding each case's value")
            path = Path(cfg.case_labels).expanduser()
            self._table = CaseLabelTable(path if path.is_absolute() else self.data_root() / path, cfg.case_column, cfg.label_column)
        return self._table

    def rule(self) -> LabelRule | None:
        """How table values become classes; None without a table."""
        table = self.table()
        if table is not None and self._rule is None:
            cfg = self.config
            self._rule = label_rule(cfg.label_column, cfg.label_map, cfg.label_threshold, cfg.class_names, table.values())
        return self._rule

    @property
    def info(self) -> DataInfo:
        """The channels of dataset.json, normalised by modality to [0, 1]; the case classes when a table gives them."""
        cfg, description = self.config, self.description()
        kinds = list(dict.fromkeys("CT" if is_ct(m) else "MRI" for m in description.channels))
        rule = self.rule()
        return DataInfo(
            spatial_dims=cfg.spatial_dims,
            in_channels=len(description.channels),
            channel_names=list(description.channels),
            patch_size=list(cfg.patch_size),
            intensity=self.intensity_text(),
            modality=f"{' + '.join(kinds)} ({description.name})",
            spacing=list(cfg.spacing)[: cfg.spatial_dims] if cfg.spacing else None,
            axes="X,Y,Z" if cfg.spatial_dims == 3 else "X,Y (axial slices)",
            num_classes=len(rule.names) if rule else None,
            class_names=list(rule.names) if rule else [],
        )

    def intensity_text(self) -> str:
        """How each channel was brought to [0, 1], for the model's input contract."""
        cfg = self.config
        if cfg.intensity == Intensity.none:
            return "as stored: already in [0, 1] (data.intensity=none)"
        low, high = cfg.hu_window
        parts = []
        for ct in (True, False):
            names = [m for m in self.description().channels if is_ct(m) == ct]
            if names:
                how = f"HU clipped to [{low:g}, {high:g}] then scaled to [0, 1]" if ct else MRI_NORMALISATIONS[cfg.mri_normalisation]
                parts.append(f"{', '.join(names)}: {how}")
        return "; ".join(parts)

    def check_config(self) -> None:
        """A patch of spatial_dims values, a known normalisation, an increasing HU window, fractions in range, a
        spacing of 3 positive values, case-label settings that fit together."""
        cfg = self.config
        check_patch_size(cfg)
        intensity_of(cfg.mri_normalisation)
        if len(cfg.hu_window) != 2 or cfg.hu_window[1] <= cfg.hu_window[0]:
            raise ConfigError(f"data.hu_window={list(cfg.hu_window)} must be two increasing HU values, e.g. [-1000, 1000]")
        for key in ("val_fraction", "test_fraction"):
            if not 0 <= cfg[key] < 1:
                raise ConfigError(f"data.{key}={cfg[key]} must be in [0, 1)")
        if not 0 <= cfg.foreground_fraction <= 1:
            raise ConfigError(f"data.foreground_fraction={cfg.foreground_fraction} must be in [0, 1]")
        if cfg.patches_per_case < 1:
            raise ConfigError(f"data.patches_per_case={cfg.patches_per_case} must be at least 1")
        if cfg.spacing is not None and (len(cfg.spacing) != 3 or min(cfg.spacing) <= 0):
            raise ConfigError(f"data.spacing={list(cfg.spacing)} must be 3 positive voxel sizes in mm, e.g. [1.5, 1.5, 2]")
        if cfg.case_labels is None and (cfg.label_map is not None or cfg.label_threshold is not None):
            raise ConfigError("data.label_map and data.label_threshold make classes from data.case_labels: set data.case_labels=TABLE.csv")
        self.rule()

    def settings(self) -> CaseSettings:
        """What shapes a loaded case."""
        cfg, description = self.config, self.description()
        extent = [int(s) for s in cfg.patch_size] + [1] * (3 - len(cfg.patch_size))
        return CaseSettings(
            tuple(description.channels), tuple(sorted(description.labels)), str(cfg.intensity), tuple(cfg.hu_window),
            cfg.mri_normalisation, float(cfg.body_threshold), tuple(float(s) for s in cfg.spacing) if cfg.spacing else None,
            tuple(extent),
        )

    def find(self) -> list[Case]:
        """Find and check every case (files, headers, voxels, classes): DataProblems listing every problem."""
        cfg, root, description = self.config, self.data_root(), self.description()
        cases, missing = find_cases(root, description)
        problems = Problems()
        problems.lines.extend(missing)
        readable = []
        for case in cases:
            with problems.collect():
                case.patient_id = patient_of(case, cfg.patient_regex)
                check_headers(case, len(description.channels))
                readable.append(case)
        checks = [FileCheck(c.files, partial(check_voxels, c, description.labels), repr(sorted(description.labels))) for c in readable]
        with problems.collect():
            verify_files(checks, cfg, "decathlon")
        table, rule = self.table(), self.rule()
        if table is not None and rule is not None:
            self.classes, lines = table.labels(rule)
            problems.lines.extend(lines)
            unknown = sorted(set(self.classes) - {c.case_id for c in cases})
            if unknown:
                log.warning("%s names %d case(s) that are not in %s, e.g. %s", table.path, len(unknown), description.path, unknown[0])
        problems.raise_any()
        return cases

    def evaluable(self, case: Case) -> bool:
        """Whether a case can be scored: it has a class (classification data), else a label map (when any case has)."""
        if self.table() is not None:
            return case.case_id in self.classes
        return case.label is not None or all(c.label is None for c in self.cases)

    def split_cases(self) -> dict[str, list[Case]]:
        """Scorable cases split by patient (the test split from labelsTs when present); the other cases train, except
        those of labelsTs and of a validation or test patient, which are left out."""
        cfg = self.config
        training = [c for c in self.cases if c.role == "training" and self.evaluable(c)]
        official = [c for c in self.cases if c.role == "test" and self.evaluable(c)]
        parts = self.split(training, cfg.val_fraction, 0.0 if official else cfg.test_fraction, key=lambda c: c.patient_id)
        if official:
            parts["test"] = official
        held = {c.patient_id for name in ("val", "test") for c in parts[name]}
        placed = {c.case_id for part in parts.values() for c in part}
        rest = [c for c in self.cases if c.case_id not in placed]
        kept = [c for c in rest if c.patient_id not in held and c.role != "test"]
        parts["train"] = sorted(parts["train"] + kept, key=lambda c: c.case_id)
        left_out = [c.case_id for c in rest if c not in kept]
        if left_out:
            log.info("%d case(s) without a label, of test or validation patients, are left out, e.g. %s", len(left_out), left_out[0])
        return parts

    def store(self, cases: Sequence[Case]) -> Dataset:
        """The loaded cases, cached as ``data.cache`` says."""
        cfg, settings = self.config, self.settings()
        items = [{"images": [str(p) for p in c.images], **({"label": str(c.label)} if c.label else {})} for c in cases]
        if cfg.cache == "disk":
            return MonaiDataset(items, LoadCase(settings, ArrayCache(cache_folder(cfg.cache_dir, "decathlon"))))
        with data_errors():
            return cached_dataset(items, LoadCase(settings), cfg)

    def dataset(self, cases: list[Case], split: str) -> Dataset | None:
        """The items of a split: training patches; whole cases or fixed patches for validation and test."""
        if not cases:
            return None
        cfg = self.config
        volumes = CaseVolumes(cases, self.store(cases))
        classes = [self.classes.get(c.case_id) for c in cases]
        if split != "train" and self.evaluation_data == "volumes":
            return WholeCases(volumes, classes)
        classifying = self.table() is not None
        per_case = 1 if classifying and split != "train" else cfg.patches_per_case
        positions = TargetFraction(1.0 if classifying else cfg.foreground_fraction)
        return CasePatches(volumes, classes, patch_size=cfg.patch_size, per_volume=per_case, positions=positions,
                           random=split == "train", seed=cfg.split_seed)

    def make_splits(self) -> dict[str, Dataset | None]:
        """Find and check the cases, split them by patient, and make each split's items."""
        self.cases = self.find()
        parts = self.split_cases()
        self.case_splits = {c.case_id: name for name, part in parts.items() for c in part}
        return {name: self.dataset(part, name) for name, part in parts.items()}

    def evaluation_batch_size(self) -> int:
        """One whole case per batch (their shapes differ), else ``data.batch_size``."""
        return 1 if self.evaluation_data == "volumes" else self.config.batch_size

    def _train(self) -> CasePatches:
        if self.train_dataset is None:
            self.setup("fit")
        return self.train_dataset

    def training_case_labels(self) -> np.ndarray:
        """Per training case: its class (classification data), else 0 with a label map; -1 for the others."""
        train = self._train()
        cases = train.volumes.cases
        if self.table() is not None:
            return np.array([self.classes.get(c.case_id, UNKNOWN_LABEL) for c in cases], dtype=np.int64)
        if all(c.label is None for c in cases):
            raise DataError(f"data {self.config.name!r} under {self.config.root} has no label maps and no data.case_labels, so data.label_budget cannot select any")
        return np.array([0 if c.label is not None else UNKNOWN_LABEL for c in cases], dtype=np.int64)

    def train_labels(self) -> np.ndarray | None:
        """Each training item's case class (-1: none); with label maps and no classes, 0 for segmented cases."""
        try:
            return np.repeat(self.training_case_labels(), self._train().per_volume)
        except DataError:
            return None

    def budget_labels(self) -> np.ndarray | None:
        """Each training case's class (-1: none), as ``data.label_budget`` counts cases; 0 for segmented cases."""
        try:
            return self.training_case_labels()
        except DataError:
            return None

    def budget_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(labeled, unlabeled) training items: ``data.label_budget`` counts cases with a class (or a label map),
        stratified by class and nested by ``seed``."""
        train = self._train()
        chosen, rest = labeled_subset(self.training_case_labels(), self.config.label_budget, self.config.seed, unit="cases")
        return train.item_indices(chosen.tolist()), train.item_indices(rest.tolist())

    def train_dataloader(self) -> DataLoader | Any:
        """As every DataModule's; for pretraining on cases of which only some have a label map or a class, the items
        lose both (batches need the same keys)."""
        cases = self._train().volumes.cases
        with_mask = {c.label is not None for c in cases}
        with_class = {c.case_id in self.classes for c in cases}
        if self.training_data == "all" and (len(with_mask) > 1 or (self.table() is not None and len(with_class) > 1)):
            return self._loader(WithoutLabels(self.train_dataset), shuffle=True)
        return super().train_dataloader()

    def case_table(self) -> tuple[list[str], list[list[str]]]:
        """One row per case for check-data: split, patient, shape, spacing, stored intensity range, label values, class."""
        rule = self.rule()
        header = ["case", "patient", "split", "shape", "spacing (mm)", "intensity", "label values", "class"]
        rows = []
        for case in self.cases:
            images = [nib.load(str(p)) for p in case.images]
            shape = images[0].shape if len(images) == 1 else (*images[0].shape, len(images))
            ranges = [(float(np.nanmin(v)), float(np.nanmax(v))) for v in (np.asanyarray(i.dataobj) for i in images)]
            low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
            values = label_values(read_voxels(case.label)) if case.label else []
            label = self.classes.get(case.case_id)
            rows.append([
                case.case_id, case.patient_id, self.case_splits.get(case.case_id, "left out"), shape_text(shape),
                "x".join(f"{s:.3g}" for s in images[0].header.get_zooms()[:3]), f"[{low:.4g}, {high:.4g}]",
                ", ".join(f"{v:g}" for v in values) or "-", "-" if label is None or rule is None else rule.names[label],
            ])
        return header, rows
