"""LUNA16 chest CT (MetaImage .mhd + .raw in ``subset0`` .. ``subset9``): cubes inside the body, Models Genesis split.

Layout: ``<root>/subsetN/<seriesuid>.mhd`` (+ the ``.raw`` its header names; a nested ``subsetN/subsetN/`` is found
too) and, optionally, ``<root>/annotations.csv`` (``seriesuid,coordX,coordY,coordZ,diameter_mm``, world mm).
``candidates.csv`` and ``seg-lungs-LUNA16/`` are not used. MetaImage files outside ``subsetN`` folders are refused:
the subsets are the official split (for a plain folder of .mhd volumes use ``data=ct_folder data.pattern='*.mhd'``).

Nodule labels: an annotation's world point (x, y, z in mm, ITK's LPS physical space, like the MetaImage header's
``Offset``) becomes a voxel index of the array MONAI returns (axes x, y, z, as stored) through the inverse of the
image's affine (MONAI's affine is in RAS, so x and y are negated first); it is rounded to the nearest voxel.
``label`` = 1 when the patch holds an annotated nodule centre. Every scan gives one patch around each of its nodules
(the centre anywhere in the middle half of the patch) and fills the rest of its ``patches_per_volume`` with random
patches centred in the body holding no nodule centre (the Models Genesis recipe). Without annotations.csv items
have no ``label``.

Memory: ``data.cache`` none or memory holds every scan in memory (int16 HU and the body mask: 3 bytes a voxel, about
100 MB a scan); ``data.cache=disk`` writes them once as .npy files in ``data.cache_dir`` and memory-maps them, which is
the way to use all 888 scans. Patches are windowed to [0, 1] when they are read.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from monai.transforms import LoadImage
from tqdm.auto import tqdm

from lightning_ssl.data.base import BaseDataModule, DataInfo, body_box, ct_info
from lightning_ssl.data.disk_cache import cache_folder, source_stamp
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.intensity import ct_body_mask, window_hu
from lightning_ssl.data.patches import PatchDataset, TargetsFirst, Volume
from lightning_ssl.data.verify import Problems
from lightning_ssl.errors import one_line
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import FolderDataConfig

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SUBSET_FOLDER = re.compile(r"^subset(\d+)$")
ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ")
ELEMENT_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4}
ELEMENT_BYTES.update({"MET_FLOAT": 4, "MET_DOUBLE": 8, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8})
CLASS_NAMES = ("no nodule", "nodule")
LAYOUT = "<root>/subset0..subset9/<seriesuid>.mhd + .raw"


@dataclass
class Luna16Config(FolderDataConfig):
    """LUNA16 scans by subset: Models Genesis split (0-4 train, 5-6 val, 7-9 test), 32 cubes of 64x64x32 per scan.

    ``val_fraction``: when no scan of ``val_subsets`` is present, that share of the training scans (by ``split_seed``)
    validates instead. ``annotations``: the nodule table, relative to ``root`` (absent: no labels).
    """

    name: str = "luna16"
    train_subsets: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    val_subsets: list[int] = field(default_factory=lambda: [5, 6])
    test_subsets: list[int] = field(default_factory=lambda: [7, 8, 9])
    patches_per_volume: int = 32
    hu_window: list[float] = field(default_factory=lambda: [-1000.0, 1000.0])
    body_threshold: float = -500.0
    annotations: str = "annotations.csv"
    val_fraction: float = 0.1


class Scan(Volume):
    """One scan: HU (1, X, Y, Z) and body mask (arrays or memory maps), spacing (mm), body box, nodule centre voxels."""

    @property
    def seriesuid(self) -> str:
        """The scan's LUNA16 id."""
        return self.patient_id

    @property
    def hu(self) -> np.ndarray:
        """The scan in Hounsfield units (X, Y, Z)."""
        return self.image[0]

    @property
    def nodules(self) -> np.ndarray:
        """The voxel of each annotated nodule centre inside the scan (K, 3)."""
        return self.targets


def find_scans(folder: Path) -> dict[int, list[Path]]:
    """The .mhd files of every non-empty ``subsetN`` folder of ``folder``, by subset number."""
    subsets = {}
    for child in sorted(folder.iterdir()):
        match = SUBSET_FOLDER.match(child.name)
        if match and child.is_dir():
            files = sorted(child.rglob("*.mhd"))
            if files:
                subsets[int(match.group(1))] = files
    if subsets:
        return subsets
    stray = next(folder.rglob("*.mhd"), None)
    if stray is not None:
        raise DataError(
            f"{stray} is not inside a subsetN folder: LUNA16 expects {LAYOUT} (the subsets are the split); "
            f"for a plain folder of volumes use data=ct_folder data.pattern='*.mhd'"
        )
    raise DataError(f"no LUNA16 scan under {folder}: expected {LAYOUT}")


def header_fields(mhd: Path) -> dict[str, str]:
    """The ``Key = Value`` lines of a MetaImage header."""
    fields = {}
    for line in mhd.read_text(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def check_metaimage(mhd: Path) -> None:
    """Check, from the header alone, that the data file of ``mhd`` exists and is as long as DimSize and ElementType say."""
    fields = header_fields(mhd)
    data_file = fields.get("ElementDataFile")
    if not data_file or not fields.get("DimSize"):
        raise DataError(f"{mhd} has no DimSize or ElementDataFile line: not a MetaImage header")
    if data_file == "LOCAL" or data_file.startswith("LIST") or "%" in data_file:
        return  # voxels inside the header file, or spread over several files: ITK checks those when reading
    raw = mhd.parent / data_file
    if not raw.is_file():
        raise DataError(f"{mhd} names the data file {raw}, which is missing: put the .raw next to its .mhd")
    element = ELEMENT_BYTES.get(fields.get("ElementType", ""))
    if element is None or fields.get("CompressedData", "False").lower() == "true":
        return
    channels = int(fields.get("ElementNumberOfChannels", "1"))
    expected = int(np.prod([int(v) for v in fields["DimSize"].split()])) * element * channels
    found = raw.stat().st_size
    if found < expected:
        raise DataError(
            f"{raw} holds {found} bytes but {mhd.name} describes {expected} (DimSize {fields['DimSize']}, "
            f"{fields['ElementType']}): truncated, download it again"
        )


def read_annotations(path: Path) -> dict[str, list[list[float]]]:
    """Nodule centres in world mm (x, y, z) by seriesuid, from a LUNA16 annotations.csv."""
    with open(path, newline="") as handle:
        rows = csv.DictReader(handle)
        missing = [c for c in ANNOTATION_COLUMNS if c not in (rows.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path} lacks the columns {missing}: a LUNA16 annotations file has seriesuid,coordX,coordY,coordZ,diameter_mm"
            )
        nodules: dict[str, list[list[float]]] = {}
        for line, row in enumerate(rows, start=2):
            try:
                point = [float(row[c]) for c in ANNOTATION_COLUMNS[1:]]
            except (TypeError, ValueError):
                coordinates = [row[c] for c in ANNOTATION_COLUMNS[1:]]
                raise DataError(f"{path} line {line}: coordinates {coordinates} are not numbers") from None
            nodules.setdefault(row["seriesuid"].strip(), []).append(point)
    return nodules


def world_to_voxel(points: Sequence[Sequence[float]], affine: np.ndarray, ras: bool = True) -> np.ndarray:
    """World points (x, y, z mm in the MetaImage's LPS space) as voxel indices (N, 3) of the MONAI array, not rounded.

    ``affine`` maps voxel indices to world; MONAI's is in RAS (``ras=True``), which negates x and y.
    """
    world = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if ras:
        world = world * np.array([-1.0, -1.0, 1.0])
    homogeneous = np.concatenate([world, np.ones((len(world), 1))], axis=1)
    return (np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ homogeneous.T).T[:, :3]


def read_hu(mhd: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """HU array (X, Y, Z; int16 as stored, else float32), the voxel-to-world affine and whether it is RAS."""
    try:
        image = LoadImage(reader="ITKReader", image_only=True, dtype=None)(str(mhd))
    except (RuntimeError, OSError, ValueError) as error:  # MONAI says "cannot find a suitable reader" when ITK fails
        raise DataError(f"cannot read {mhd} and its data file: {one_line(error)}") from None
    hu = image.numpy()
    if hu.ndim != 3:
        raise DataError(f"{mhd} has shape {hu.shape}: expected one 3D CT volume")
    if hu.dtype.kind == "f" or hu.dtype.itemsize > 2:
        hu = hu.astype(np.float32)
        if not np.isfinite(hu).all():
            raise DataError(f"{mhd} holds NaN or infinite voxels: fix or exclude the scan")
    ras = str(image.meta.get("space", "RAS")) == "RAS"
    return hu, np.asarray(image.affine, dtype=np.float64), ras


def body_and_box(hu: np.ndarray, threshold: float, mhd: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The body mask of a scan and its bounding box (low, high)."""
    body = ct_body_mask(hu, threshold)
    try:
        low, high = body_box(body)
    except DataError:
        raise DataError(
            f"{mhd} has no voxel above data.body_threshold={threshold:g} HU: is it a CT in Hounsfield units?"
        ) from None
    return body, low, high


def scan_stamp(mhd: Path, threshold: float) -> str:
    """Sizes and modification times of a scan's files, and the body threshold: a cache entry is valid while they hold."""
    data = mhd.parent / header_fields(mhd)["ElementDataFile"]
    return f"{source_stamp([mhd, data] if data.is_file() else [mhd])} threshold:{threshold:g}"


def disk_cached_arrays(mhd: Path, cache_dir: str | None, threshold: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """HU and body mask as memory maps of .npy files in ``cache_dir`` (written on first use), and the scan's facts."""
    folder = cache_folder(cache_dir, "luna16")
    stem = mhd.name.removesuffix(".mhd")
    paths = {key: folder / f"{stem}.{key}.npy" for key in ("hu", "body")}
    facts_path = folder / f"{stem}.facts.npz"
    stamp = scan_stamp(mhd, threshold)
    facts = dict(np.load(facts_path)) if facts_path.is_file() else {}
    if str(facts.get("stamp")) != stamp:
        hu, affine, ras = read_hu(mhd)
        body, low, high = body_and_box(hu, threshold, mhd)
        np.save(paths["hu"], hu)
        np.save(paths["body"], body)
        facts = {"stamp": np.array(stamp), "affine": affine, "ras": np.array(ras), "low": low, "high": high}
        np.savez(facts_path, **facts)  # written last: a complete entry has its facts
    return np.load(paths["hu"], mmap_mode="r"), np.load(paths["body"], mmap_mode="r"), facts


def load_scan(mhd: Path, config: Luna16Config, annotations: dict[str, list[list[float]]] | None) -> Scan:
    """One scan with its body mask and the voxel of each annotated nodule centre inside it."""
    if config.cache == "disk":
        hu, body, facts = disk_cached_arrays(mhd, config.cache_dir, config.body_threshold)
        affine, ras, low, high = facts["affine"], bool(facts["ras"]), facts["low"], facts["high"]
    else:
        hu, affine, ras = read_hu(mhd)
        body, low, high = body_and_box(hu, config.body_threshold, mhd)
    uid = mhd.name.removesuffix(".mhd")
    points = (annotations or {}).get(uid, [])
    nodules = np.rint(world_to_voxel(points, affine, ras)).astype(np.int64) if points else np.zeros((0, 3), np.int64)
    inside = np.all((nodules >= 0) & (nodules < np.array(hu.shape)), axis=1)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    box = (np.asarray(low), np.asarray(high))
    return Scan(uid, hu[None], body, targets=nodules[inside], spacing=spacing.astype(np.float32), source=str(mhd), box=box)


@DATASETS.register("luna16")
class Luna16DataModule(BaseDataModule):
    """LUNA16 chest CT cubes (or axial slice patches) by subset; ``label`` = nodule centre in the patch."""

    Config = Luna16Config
    root_hint = "the folder holding subset0..subset9"

    @property
    def info(self) -> DataInfo:
        """One CT channel, HU window scaled to [0, 1]; nodule / no nodule."""
        return ct_info(self.config, "CT (chest, LUNA16)", num_classes=2, class_names=list(CLASS_NAMES))

    def _subset_files(self) -> dict[str, list[Path]]:
        """The .mhd files of each split, from the subsets the config names."""
        cfg = self.config
        chosen = {name: [int(s) for s in getattr(cfg, f"{name}_subsets")] for name in SPLITS}
        flat = [s for subsets in chosen.values() for s in subsets]
        repeated = sorted({s for s in flat if flat.count(s) > 1})
        if repeated:
            raise DataError(f"subset(s) {repeated} are in more than one of data.train_subsets, val_subsets, test_subsets")
        found = find_scans(self.data_root())
        absent = [s for s in flat if s not in found]
        if absent:
            log.warning("LUNA16 subsets absent from %s: %s (present: %s)", cfg.root, absent, sorted(found))
        files = {name: [f for s in subsets for f in found.get(s, [])] for name, subsets in chosen.items()}
        if not files["train"]:
            raise DataError(f"no scan of data.train_subsets={chosen['train']} under {cfg.root}: expected {LAYOUT}")
        uids = [f.name for paths in files.values() for f in paths]
        twice = sorted({u for u in uids if uids.count(u) > 1})
        if twice:
            raise DataError(f"scan {twice[0]} is in two subsets under {cfg.root}: each seriesuid belongs to one subset")
        return files

    def _annotations(self) -> dict[str, list[list[float]]] | None:
        """The nodule table, or None (with a warning) when the file is absent."""
        path = self.data_root() / self.config.annotations
        if not path.is_file():
            log.warning("no %s: LUNA16 items have no nodule label", path)
            return None
        return read_annotations(path)

    def make_splits(self) -> dict[str, PatchDataset | None]:
        """Find and check the scans of every subset, read them with their nodules, and build the patch datasets."""
        cfg = self.config
        files = self._subset_files()
        if not files["val"]:
            files["train"], files["val"] = self._hold_out(files["train"])
        every = [f for paths in files.values() for f in paths]
        problems = Problems()
        for path in every:
            with problems.collect():
                check_metaimage(path)
        problems.raise_any()
        annotations = self._annotations()
        loaded = {}
        for path in tqdm(every, desc="reading LUNA16 scans", disable=len(every) < 4):
            with problems.collect():
                loaded[path] = load_scan(path, cfg, annotations)
        problems.raise_any()
        extent = list(cfg.patch_size) + [1] * (3 - len(cfg.patch_size))
        for scan in loaded.values():
            with problems.collect():
                if any(p > s for p, s in zip(extent, scan.hu.shape)):
                    raise DataError(f"scan {scan.source} {list(scan.hu.shape)} is smaller than the patch: lower data.patch_size")
        problems.raise_any()
        scans = {name: [loaded[f] for f in paths] for name, paths in files.items()}

        window = partial(window_hu, window=cfg.hu_window)
        return {
            name: PatchDataset(
                scans[name], cfg.patch_size, cfg.patches_per_volume, TargetsFirst(), name == "train", cfg.split_seed,
                labelled=annotations is not None, intensity=window,
            )
            if scans[name]
            else None
            for name in SPLITS
        }

    def _hold_out(self, train: list[Path]) -> tuple[list[Path], list[Path]]:
        """(train, val) scans when no validation subset is present: ``val_fraction`` of the training scans by split_seed."""
        cfg = self.config
        try:
            split = self.split(train, cfg.val_fraction, 0.0, key=lambda f: f.name)
        except DataError:
            raise DataError(
                f"no scan of data.val_subsets={list(cfg.val_subsets)} and {len(train)} training scan(s) to hold out from: "
                f"add a validation subset folder or more training scans"
            ) from None
        log.warning("no scan of val_subsets %s: %d training scan(s) validate instead", list(cfg.val_subsets), len(split["val"]))
        return split["train"], split["val"]
