"""BraTS brain-tumour MRI: four co-registered modalities per case, tumour labels, patches inside the brain.

Three official layouts, recognised from the file names (cases directly under ``root`` or one folder deeper):

- 2017-2020: ``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz``, labels {0, 1, 2, 4};
- 2021: ``BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz``, labels {0, 1, 2, 4};
- 2023 and later: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz``, labels {0, 1, 2, 3}.

Channels are always (t1, t1ce, t2, flair); labels are mapped to one canonical map (see ``metrics/brats_labels.py``).
Cases without a seg file (validation/test cases) are unlabeled: when any case has labels, the splits hold
the labeled cases (items carry ``mask``) and ``unlabeled_dataset()`` returns the others; when none has,
the splits hold every case and no item carries ``mask``. Whole cases are read through MONAI and cached as
``data.cache`` says; patches are cut from them per item, so real BraTS never has to sit in memory.
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
from monai.transforms import Compose, LoadImage, Transform
from torch.utils.data import ConcatDataset, Dataset
from tqdm.auto import tqdm

from lightning_ssl.data.base import (
    BaseDataModule,
    DataInfo,
    WithoutLabels,
    body_box,
    cached_dataset,
    check_patch_size,
)
from lightning_ssl.data.budget import labeled_subset
from lightning_ssl.data.errors import DataError, data_errors
from lightning_ssl.data.intensity import intensity_of, normalise_mri
from lightning_ssl.data.patches import PatchDataset, Volume
from lightning_ssl.data.sampling import Subset
from lightning_ssl.data.verify import FileCheck, Problems, verify_files
from lightning_ssl.errors import one_line
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import ConfigError, FolderDataConfig
from lightning_ssl.metrics.brats_labels import CONVENTIONS, MODALITIES, canonical_labels, check_label_values

log = logging.getLogger(__name__)

NIFTI = (".nii.gz", ".nii")


@dataclass(frozen=True)
class Layout:
    """One BraTS file naming: ``<case><separator><suffix>.nii.gz`` per modality and seg, and its label convention."""

    name: str
    separator: str
    suffixes: dict[str, str]
    convention: str

    def stem(self, case: str, key: str) -> str:
        """The file name of ``key`` (a modality or ``seg``) of ``case``, without extension."""
        return f"{case}{self.separator}{self.suffixes[key]}"

    def example(self, case: str = "<case>") -> str:
        """The expected names of one case's files, for messages."""
        names = ",".join(self.suffixes[k] for k in (*MODALITIES, "seg"))
        return f"{case}/{case}{self.separator}{{{names}}}.nii.gz"


_OLD_NAMES = {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}
LAYOUTS = (
    Layout("2023", "-", {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}, "2023"),
    Layout("2021", "_", _OLD_NAMES, "2017"),
    Layout("2017-2020", "_", _OLD_NAMES, "2017"),
)


@dataclass
class BraTSConfig(FolderDataConfig):
    """BraTS cases under ``root``; ``label_convention``: auto (from the layout), 2017 (labels 0,1,2,4) or 2023 (0,1,2,3).

    ``mri_normalisation``: zscore or minmax over brain voxels, then [0, 1]. ``patches_per_case`` patches are cut
    from each case per epoch; uncached, each one reads its case again (``data.cache=memory|disk`` reads once).
    ``with_masks``: true splits only the segmented cases and yields their ``mask`` (segmentation training);
    false splits every case, images only (pretraining); None (auto) means true when every case is segmented.
    """

    name: str = "brats"
    patch_size: list[int] = field(default_factory=lambda: [96, 96, 64])
    batch_size: int = 2
    label_convention: str = "auto"
    mri_normalisation: str = "zscore"
    patches_per_case: int = 1
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    with_masks: Optional[bool] = None


@dataclass
class Case:
    """One case's files: a path per modality, and ``seg`` when it is labeled."""

    case_id: str
    layout: Layout
    files: dict[str, Path]

    @property
    def labeled(self) -> bool:
        """True when the case has a segmentation."""
        return "seg" in self.files


def _nifti(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{ext}" for ext in NIFTI if (folder / f"{stem}{ext}").is_file()), None)


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith((".", "__")) for part in path.relative_to(root).parts)


def case_folders(root: Path) -> list[Path]:
    """Folders one or two levels under ``root`` that hold NIfTI files (hidden and ``__MACOSX`` folders skipped)."""
    files = [*root.glob("*/*.nii*"), *root.glob("*/*/*.nii*")]
    return sorted({f.parent for f in files if f.name.endswith(NIFTI) and _visible(f, root)})


def detect_layout(folder: Path) -> Layout:
    """The layout whose names the folder's files follow (the folder name is the case id)."""
    case = folder.name
    for layout in LAYOUTS:
        named = any(_nifti(folder, layout.stem(case, key)) for key in layout.suffixes)
        if named and (layout.name != "2021" or case.startswith("BraTS2021_")):
            return layout
    found = ", ".join(sorted(p.name for p in folder.iterdir() if p.name.endswith(NIFTI))[:4])
    raise DataError(
        f"{folder} matches no BraTS layout (found {found}): expected {LAYOUTS[2].example()} (2017-2021) "
        f"or {LAYOUTS[0].example()} (2023+), the folder named after the case"
    )


def read_case(folder: Path) -> Case:
    """The case in ``folder``; DataError naming the case and the missing file when a modality is absent."""
    layout, case = detect_layout(folder), folder.name
    files = {key: _nifti(folder, layout.stem(case, key)) for key in (*MODALITIES, "seg")}
    missing = [f"{layout.stem(case, k)}.nii.gz" for k in MODALITIES if files[k] is None]
    if missing:
        raise DataError(
            f"case {case} ({folder}) is missing {', '.join(missing)}: BraTS {layout.name} needs {layout.example(case)}"
        )
    return Case(case, layout, {key: path for key, path in files.items() if path is not None})


def find_cases(folder: Path) -> list[Case]:
    """Every case under ``folder``, sorted by id; DataProblems naming every unreadable case, DataError for none or a
    duplicate id."""
    cases, problems = [], Problems()
    for case_folder in case_folders(folder):
        with problems.collect():
            cases.append(read_case(case_folder))
    problems.raise_any()
    if not cases:
        raise DataError(
            f"no BraTS case under {folder}: expected <root>/{LAYOUTS[2].example()} or <root>/{LAYOUTS[0].example()} "
            f"(cases may sit one folder deeper)"
        )
    seen: dict[str, Case] = {}
    for case in cases:
        if case.case_id in seen:
            first, second = seen[case.case_id].files["t1"].parent, case.files["t1"].parent
            raise DataError(f"case {case.case_id} is found twice, in {first} and {second}: keep one copy under data.root")
        seen[case.case_id] = case
    return sorted(cases, key=lambda c: c.case_id)


def header_shape(path: Path) -> tuple[int, ...]:
    """The volume shape from a NIfTI header (nibabel reads only the header, MONAI's LoadImage the whole volume)."""
    try:
        return tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as error:
        raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and a NIfTI volume?)") from None


def check_shapes(case: Case, patch_size: Sequence[int]) -> None:
    """DataError unless every file of ``case`` is a 3D volume of one shape that holds a patch."""
    shapes = {key: header_shape(path) for key, path in case.files.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{key} {list(shape)}" for key, shape in shapes.items())
        raise DataError(f"case {case.case_id}: its files have different shapes ({listed}): they must be co-registered")
    shape = shapes["t1"]
    if len(shape) != 3:
        raise DataError(f"case {case.case_id}: {case.files['t1']} has shape {list(shape)}, expected one 3D volume")
    if any(p > s for p, s in zip(patch_size, shape)):
        raise DataError(f"patch size {list(patch_size)} is larger than case {case.case_id} {list(shape)}: lower data.patch_size")


def read_volume(path: str | Path) -> tuple[np.ndarray, list[float]]:
    """Voxels (float32) and spacing of one NIfTI volume; DataError naming the file when unreadable or not finite."""
    try:
        image = LoadImage(image_only=True, reader="NibabelReader")(str(path))
    except Exception as error:
        raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and a NIfTI volume?)") from None
    array = np.asarray(image, dtype=np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{path} holds NaN or infinite voxels: fix or exclude the case")
    return array, [float(s) for s in np.asarray(image.pixdim)[:3]]


def check_case_files(case: Case, convention: str) -> None:
    """Read every voxel of a case's files: DataError naming a file that is cut short, holds NaN or infinite values,
    or (the seg) labels outside ``convention``."""
    for key, path in case.files.items():
        try:
            voxels = np.asanyarray(nib.load(str(path)).dataobj)
        except Exception as error:  # nibabel, gzip and zlib raise many types for a file cut short
            raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and a NIfTI volume?)") from None
        if voxels.dtype.kind == "f" and not np.isfinite(voxels).all():
            raise DataError(f"{path} holds NaN or infinite voxels: fix or exclude the case")
        if key == "seg":
            check_label_values(voxels, convention, path)


def brain_box(brain: np.ndarray, min_size: Sequence[int]) -> tuple[slice, ...]:
    """The brain's bounding box, widened (inside the volume) to at least ``min_size``."""
    shape = np.array(brain.shape)
    low, high = body_box(brain)
    size = np.maximum(high - low, np.minimum(np.array(min_size), shape))
    low = np.clip(low - (size - (high - low)) // 2, 0, shape - size)
    return tuple(slice(int(a), int(a + s)) for a, s in zip(low, size))


class LoadCase(Transform):
    """A case item (file names) -> normalised ``image`` (4, *box), ``brain`` (*box), ``mask`` (1, *box) if labeled.

    The box is the brain's bounding box (at least ``min_size``), to keep cached cases small.
    """

    def __init__(self, min_size: Sequence[int], normalisation: str) -> None:
        self.min_size = [int(s) for s in min_size]
        self.normalisation = normalisation

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        """Read, check, normalise and crop one case."""
        volumes, spacing = zip(*(read_volume(item[key]) for key in MODALITIES))
        shapes = {key: v.shape for key, v in zip(MODALITIES, volumes)}
        if len(set(shapes.values())) > 1:
            raise DataError(f"case {item['patient_id']}: modalities of different shapes {shapes}: they must be co-registered")
        image = np.stack(volumes)
        brain = (image != 0).any(axis=0)
        if not brain.any():
            raise DataError(f"case {item['patient_id']}: every voxel of every modality is 0, no brain to take patches from")
        box = brain_box(brain, self.min_size)
        out = {
            "patient_id": item["patient_id"],
            "image": torch.from_numpy(normalise_mri(image[(slice(None), *box)], self.normalisation)),
            "brain": torch.from_numpy(brain[box].copy()),
            "spacing": torch.tensor(spacing[0], dtype=torch.float32),
        }
        if "seg" in item:
            seg, _ = read_volume(item["seg"])
            if seg.shape != image.shape[1:]:
                raise DataError(
                    f"case {item['patient_id']}: seg {list(seg.shape)} differs from the modalities {list(image.shape[1:])}"
                )
            out["mask"] = torch.from_numpy(canonical_labels(seg, item["label_convention"], item["seg"])[box][None].copy())
        return out


class CaseVolumes(Sequence[Volume]):
    """The cases of a (cached) MONAI dataset of ``LoadCase`` outputs as volumes to cut patches from, read on access."""

    def __init__(self, cases: Dataset, count: int) -> None:
        self.cases = cases
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Volume:  # type: ignore[override]
        with data_errors():
            case = self.cases[index]
        spacing = case["spacing"].numpy()
        return Volume(case["patient_id"], case["image"], case["brain"].numpy(), case.get("mask"), spacing=spacing)


@DATASETS.register("brats")
class BraTSDataModule(BaseDataModule):
    """BraTS (2017-2020, 2021, 2023+): 4-channel MRI patches inside the brain, canonical tumour labels, split by case.

    BraTS has no labelled official test split: cases are split by ``split_seed`` (``val_fraction``, ``test_fraction``).
    Label budgets count labeled training cases.
    """

    Config = BraTSConfig
    root_hint = "the folder holding the BraTS case folders"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.cases: list[Case] = []
        self.unlabeled_cases: PatchDataset | None = None

    @property
    def info(self) -> DataInfo:
        """Four MRI channels (t1, t1ce, t2, flair) normalised over the brain to [0, 1]; no classes."""
        cfg = self.config
        return DataInfo(
            spatial_dims=cfg.spatial_dims,
            in_channels=len(MODALITIES),
            channel_names=list(MODALITIES),
            patch_size=list(cfg.patch_size),
            intensity=intensity_of(cfg.mri_normalisation),
            modality="MRI (brain, BraTS)",
            spacing=[1.0] * cfg.spatial_dims,
            axes="X,Y,Z" if cfg.spatial_dims == 3 else "X,Y (axial slices)",
        )

    def check_config(self) -> None:
        """A known label convention and MRI normalisation, a patch of spatial_dims values."""
        cfg = self.config
        if cfg.label_convention not in ("auto", *CONVENTIONS):
            raise ConfigError(f"data.label_convention={cfg.label_convention!r} is not one of auto, {', '.join(CONVENTIONS)}")
        check_patch_size(cfg)
        intensity_of(cfg.mri_normalisation)

    def _convention(self, case: Case) -> str:
        """The label convention of ``case``: its layout's, or ``data.label_convention``."""
        return case.layout.convention if self.config.label_convention == "auto" else self.config.label_convention

    def _item(self, case: Case, min_size: list[int]) -> dict[str, Any]:
        cfg = self.config
        convention = self._convention(case)
        # The settings are part of the item so that a disk cache made with other settings is not reused.
        settings = {"label_convention": convention, "normalisation": cfg.mri_normalisation, "min_size": min_size}
        return {"patient_id": case.case_id, **settings, **{key: str(path) for key, path in case.files.items()}}

    def _patches(self, cases: list[Case], random: bool, with_mask: bool) -> PatchDataset | None:
        if not cases:
            return None
        cfg = self.config
        min_size = list(cfg.patch_size) + [1] * (3 - len(cfg.patch_size))
        transform = Compose([LoadCase(min_size, cfg.mri_normalisation)])
        with data_errors():
            volumes = cached_dataset([self._item(c, min_size) for c in cases], transform, cfg)
        ids = [c.case_id for c in cases]
        return PatchDataset(
            CaseVolumes(volumes, len(ids)), cfg.patch_size, cfg.patches_per_case, random=random, seed=cfg.split_seed,
            with_mask=with_mask, patient_ids=ids,
        )

    def make_splits(self) -> dict[str, PatchDataset | None]:
        """Find the cases, check their names, header shapes and voxels, split the labeled ones (or all) by case."""
        cfg = self.config
        self.cases = find_cases(self.data_root())
        problems = Problems()
        for case in tqdm(self.cases, desc="checking BraTS headers", disable=len(self.cases) < 50):
            with problems.collect():
                check_shapes(case, cfg.patch_size)
        problems.raise_any()
        checks = [FileCheck(tuple(c.files.values()), partial(check_case_files, c, self._convention(c)), self._convention(c)) for c in self.cases]
        verify_files(checks, cfg, "brats")
        labeled = [c for c in self.cases if c.labeled]
        if cfg.with_masks and not labeled:
            raise DataError(f"data.with_masks=true but no case under {cfg.root} has a seg file: set data.with_masks=false")
        with_mask = bool(labeled) and (cfg.with_masks or (cfg.with_masks is None and len(labeled) == len(self.cases)))
        if labeled and not with_mask:
            log.info(
                "%d of %d BraTS cases have a seg file: using all %d cases as images only "
                "(data.with_masks=true trains on the segmented ones with their masks)",
                len(labeled),
                len(self.cases),
                len(self.cases),
            )
        if with_mask:
            self.unlabeled_cases = self._patches([c for c in self.cases if not c.labeled], random=True, with_mask=False)
        parts = self.split(labeled if with_mask else self.cases, cfg.val_fraction, cfg.test_fraction, key=lambda c: c.case_id)
        return {name: self._patches(cases, random=name == "train", with_mask=with_mask) for name, cases in parts.items()}

    def _train(self) -> PatchDataset:
        if self.train_dataset is None:
            self.setup("fit")
        return self.train_dataset

    def train_labels(self) -> np.ndarray | None:
        """0 for every training item when the cases are segmented (BraTS has no image classes), else None."""
        train = self._train()
        return np.zeros(len(train), dtype=np.int64) if train.with_mask else None

    def budget_labels(self) -> np.ndarray | None:
        """0 for every training case when the cases are segmented, as ``data.label_budget`` counts cases; else None."""
        train = self._train()
        return np.zeros(len(train.patient_ids), dtype=np.int64) if train.with_mask else None

    def budget_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(labeled, unlabeled) training item indices: ``data.label_budget`` counts cases, nested by ``seed``."""
        train = self._train()
        if not train.with_mask:
            raise DataError(
                f"data.label_budget needs segmented cases with their masks: set data.with_masks=true "
                f"(and check that cases under {self.config.root} have seg files)"
            )
        chosen, rest = labeled_subset(self.budget_labels(), self.config.label_budget, self.config.seed, unit="cases")
        return train.item_indices(chosen.tolist()), train.item_indices(rest.tolist())

    def unlabeled_dataset(self) -> Dataset:
        """The cases without seg plus the training cases outside the label budget (without ``mask``).

        When no case has labels, the whole training split.
        """
        train = self._train()
        if not train.with_mask:
            return train
        rest = self.budget_indices()[1]
        parts: list[Dataset] = [] if self.unlabeled_cases is None else [self.unlabeled_cases]
        if rest.size:
            parts.append(WithoutLabels(Subset(train, rest.tolist())))
        if not parts:
            raise DataError(
                f"every training case under {self.config.root} has a seg file and data.label_budget keeps them all: "
                f"no unlabeled case (add cases without seg or lower data.label_budget)"
            )
        return ConcatDataset(parts)
