"""A folder of CT volumes in Hounsfield units (NIfTI), split by patient, served as cubes inside the body."""

from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from monai.transforms import LoadImage, SpatialPad
from tqdm.auto import tqdm

from lightning_ssl.data.base import BaseDataModule, DataInfo, ct_info
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.intensity import ct_body_mask, window_hu
from lightning_ssl.data.patches import PatchDataset, Volume
from lightning_ssl.data.verify import Problems
from lightning_ssl.errors import one_line
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import Choice, FolderDataConfig

log = logging.getLogger(__name__)


class SmallVolumes(Choice):
    """What to do with a volume smaller than a patch."""

    pad = "pad"
    skip = "skip"
    error = "error"


@dataclass
class CTFolderConfig(FolderDataConfig):
    """Every file under ``root`` matching ``pattern`` (minus ``exclude``) is one patient's CT volume.

    ``small_volumes``: a volume smaller than ``patch_size`` along some axis is padded with air up to the patch (pad,
    MONAI ``SpatialPad``), left out with a warning naming it (skip), or stops setup naming it (error).
    """

    name: str = "ct_folder"
    pattern: str = "*.nii.gz"
    exclude: list[str] = field(default_factory=lambda: ["*seg*", "*mask*", "*label*"])
    patient_id_regex: Optional[str] = None
    patches_per_volume: int = 32
    val_fraction: float = 0.2
    test_fraction: float = 0.0
    hu_window: list[float] = field(default_factory=lambda: [-1000.0, 1000.0])
    body_threshold: float = -500.0
    single_volume_holdout: float = 0.25
    small_volumes: SmallVolumes = SmallVolumes.pad


def find_volumes(folder: Path, pattern: str, exclude: list[str]) -> list[Path]:
    """The files under ``folder`` matching ``pattern`` (recursively) and none of ``exclude``, sorted."""
    files = sorted(p for p in folder.rglob(pattern) if p.is_file() and not any(fnmatch.fnmatch(p.name, e) for e in exclude))
    if not files:
        raise FileNotFoundError(f"no file matching {pattern!r} under {folder} (excluding {exclude}): check data.root and data.pattern")
    return files


def patient_id(path: Path, regex: str | None) -> str:
    """The patient id of a file: the first group of ``regex`` on its name, else the name without extension."""
    name = path.name.removesuffix(".gz").rsplit(".", 1)[0]
    if regex is None:
        return name
    match = re.search(regex, path.name)
    if match is None:
        raise DataError(f"data.patient_id_regex={regex!r} does not match {path.name!r}")
    return match.group(1) if match.groups() else match.group(0)


def read_ct(path: Path) -> tuple[np.ndarray, list[float]]:
    """HU array and voxel spacing (mm) of one volume; a one-line error names a bad file."""
    try:
        image = LoadImage(image_only=True)(str(path))
    except Exception as error:  # readers raise many types for truncated or foreign files
        raise DataError(f"cannot read {path}: {one_line(error)} (is the file complete and a CT volume?)") from None
    hu = np.asarray(image, dtype=np.float32)
    if hu.ndim != 3:
        raise DataError(f"{path} has shape {hu.shape}: expected one 3D CT volume")
    if not np.isfinite(hu).all():
        raise DataError(f"{path} holds NaN or infinite voxels: fix or exclude the file")
    spacing = [float(s) for s in np.asarray(image.pixdim)[:3]] if hasattr(image, "pixdim") else None
    return hu, spacing


@DATASETS.register("ct_folder")
class CTFolderDataModule(BaseDataModule):
    """Random cubes inside the body of CT volumes, HU window scaled to [0, 1], patient-level split.

    Volumes are held in memory. With one volume there is no patient to hold out: validation then
    uses the last slices (``single_volume_holdout`` of them, at least one patch deep), with a warning.
    """

    Config = CTFolderConfig
    root_hint = "the folder holding the CT volumes"

    @property
    def info(self) -> DataInfo:
        """One CT channel, HU window scaled to [0, 1]."""
        return ct_info(self.config)

    def _load(self, path: Path) -> Volume | None:
        """The volume of one file, padded when smaller than a patch (``small_volumes``); None when it is skipped."""
        cfg = self.config
        hu, _ = read_ct(path)
        image, body = window_hu(hu, cfg.hu_window)[None], ct_body_mask(hu, cfg.body_threshold)[None]
        extent = list(cfg.patch_size) + [1] * (3 - len(cfg.patch_size))
        if any(p > s for p, s in zip(extent, hu.shape)):
            found = f"{path} is {list(hu.shape)}, smaller than the patch {extent}"
            if cfg.small_volumes == SmallVolumes.error:
                raise DataError(f"{found}: lower data.patch_size, or set data.small_volumes=pad (pad with air) or skip")
            if cfg.small_volumes == SmallVolumes.skip:
                log.warning("%s: left out (data.small_volumes=skip)", found)
                return None
            pad = SpatialPad(extent, value=0)
            image, body = np.asarray(pad(image)), np.asarray(pad(body))
            log.info("%s: padded with air to %s (data.small_volumes=pad)", found, list(image.shape[1:]))
        return Volume(patient_id=patient_id(path, cfg.patient_id_regex), image=image, body=body[0], source=str(path))

    def make_splits(self) -> dict[str, PatchDataset | None]:
        """Read the volumes and split them by patient (one volume: by slabs)."""
        cfg = self.config
        files = find_volumes(self.data_root(), cfg.pattern, list(cfg.exclude))
        loaded, problems = [], Problems()
        for path in tqdm(files, desc="reading CT volumes", disable=len(files) < 4):
            with problems.collect():
                loaded.append(self._load(path))
        problems.raise_any()
        volumes = [v for v in loaded if v is not None]
        if not volumes:
            raise DataError(
                f"every volume under {cfg.root} is smaller than data.patch_size={list(cfg.patch_size)}: "
                f"lower it or set data.small_volumes=pad"
            )
        if len(volumes) == 1:
            parts = dict(zip(("train", "val"), self._slab_split(volumes[0])))
        else:
            parts = self.split(volumes, cfg.val_fraction, cfg.test_fraction, key=lambda v: v.patient_id)
        return {
            name: PatchDataset(chosen, cfg.patch_size, cfg.patches_per_volume, random=name == "train", seed=cfg.split_seed)
            if chosen
            else None
            for name, chosen in parts.items()
        }

    def _slab_split(self, volume: Volume) -> tuple[list[Volume], list[Volume]]:
        depth = volume.image.shape[-1]
        patch_depth = self.config.patch_size[-1] if self.config.spatial_dims == 3 else 1
        held = max(patch_depth, round(self.config.single_volume_holdout * depth))
        if depth - held < patch_depth:
            raise DataError(f"the only volume ({depth} slices) is too thin to hold out {held} slices for validation")
        log.warning(
            "only one volume (%s): validation uses its last %d of %d slices, not another patient", volume.patient_id, held, depth
        )
        cut = depth - held

        def part(sl: slice) -> Volume:
            return Volume(volume.patient_id, volume.image[..., sl], volume.body[..., sl], source=volume.source)

        return [part(slice(0, cut))], [part(slice(cut, depth))]
