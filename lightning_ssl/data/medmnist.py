"""MedMNIST (v2 sets, MedMNIST+ sizes): small 2D/3D medical images with their official train/val/test split.

One file per set and size, ``<flavour>.npz`` (28 px) or ``<flavour>_<size>.npz``, with the keys
``{train,val,test}_images`` (N, *spatial[, 3]) uint8 and ``{train,val,test}_labels`` (N, 1) or (N, K).
The whole file is held in memory; MedMNIST has no patient ids, so items carry none.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from lightning_ssl.data.base import BaseDataModule, DataInfo
from lightning_ssl.data.errors import DataError
from lightning_ssl.errors import one_line
from lightning_ssl.io.download import download
from lightning_ssl.io.errors import ChecksumError, DownloadError
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import ConfigError, FolderDataConfig

BASE_URL = "https://zenodo.org/records/10519652/files"  # the MedMNIST v3 record
SPLITS = ("train", "val", "test")
KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
SIZES = {2: (28, 64, 128, 224), 3: (28, 64)}
INTENSITY = "uint8 / 255 -> [0, 1]"


class Flavour(NamedTuple):
    """What is known of one MedMNIST set before its file is read."""

    spatial_dims: int
    channels: int
    channel_name: str
    modality: str
    class_names: tuple[str, ...]


# fmt: off
_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver", "lung-left", "lung-right")
_ORGANS_2D = (*_ORGANS, "pancreas", "spleen")
FLAVOURS: dict[str, Flavour] = {
    "pathmnist": Flavour(2, 3, "RGB", "histology (colorectal, H&E)", (
        "adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle", "normal colon mucosa",
        "cancer-associated stroma", "colorectal adenocarcinoma epithelium")),
    "chestmnist": Flavour(2, 1, "X-ray", "X-ray (chest)", (
        "atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
        "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia")),
    "dermamnist": Flavour(2, 3, "RGB", "dermatoscopy (skin)", (
        "actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma", "benign keratosis-like lesions",
        "dermatofibroma", "melanoma", "melanocytic nevi", "vascular lesions")),
    "octmnist": Flavour(2, 1, "OCT", "OCT (retina)", (
        "choroidal neovascularization", "diabetic macular edema", "drusen", "normal")),
    "pneumoniamnist": Flavour(2, 1, "X-ray", "X-ray (chest, pediatric)", ("normal", "pneumonia")),
    "retinamnist": Flavour(2, 3, "RGB", "fundus photography (retina)", ("0", "1", "2", "3", "4")),
    "breastmnist": Flavour(2, 1, "ultrasound", "ultrasound (breast)", ("malignant", "normal, benign")),
    "bloodmnist": Flavour(2, 3, "RGB", "microscopy (blood cells)", (
        "basophil", "eosinophil", "erythroblast", "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
        "lymphocyte", "monocyte", "neutrophil", "platelet")),
    "tissuemnist": Flavour(2, 1, "microscopy", "microscopy (kidney cortex)", (
        "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule", "Glomerular endothelial cells",
        "Interstitial endothelial cells", "Leukocytes", "Podocytes", "Proximal Tubule Segments", "Thick Ascending Limb")),
    "organamnist": Flavour(2, 1, "CT", "CT (abdominal slices)", _ORGANS_2D),
    "organcmnist": Flavour(2, 1, "CT", "CT (abdominal slices)", _ORGANS_2D),
    "organsmnist": Flavour(2, 1, "CT", "CT (abdominal slices)", _ORGANS_2D),
    "organmnist3d": Flavour(3, 1, "CT", "CT (abdominal)", (
        "liver", "kidney-right", "kidney-left", "femur-right", "femur-left", "bladder", "heart", "lung-right", "lung-left",
        "spleen", "pancreas")),
    "nodulemnist3d": Flavour(3, 1, "CT", "CT (chest, LIDC nodules)", ("benign", "malignant")),
    "adrenalmnist3d": Flavour(3, 1, "shape mask", "CT (abdominal, adrenal shape masks)", ("normal", "hyperplasia")),
    "fracturemnist3d": Flavour(3, 1, "CT", "CT (chest, rib fractures)", (
        "buckle rib fracture", "nondisplaced rib fracture", "displaced rib fracture")),
    "vesselmnist3d": Flavour(3, 1, "shape mask", "MRA (brain vessels, voxelised meshes)", ("vessel", "aneurysm")),
    "synapsemnist3d": Flavour(3, 1, "EM", "electron microscopy (rat brain)", ("inhibitory synapse", "excitatory synapse")),
}
# fmt: on

# md5 of every official file (from the medmnist 3.0.2 package's info.py): a flavour, then its md5 at 28, 64, 128, 224 px.
_MD5_TABLE = """
pathmnist       a8b06965200029087d5bd730944a56c1 55aa9c1e0525abe5a6b9d8343a507616
                ac42d08fb904d92c244187169d1fd1d9 2c51a510bcdc9cf8ddb2af93af1eadec
chestmnist      02c8a6516a18b556561a56cbdd36c4a8 9de6cd0b934ebb5b7426cfba5efbae16
                db107e5590b27930b62dbaf558aebee3 45bd33e6f06c3e8cdb481c74a89152aa
dermamnist      0744692d530f8e62ec473284d019b0c7 b70a2f5635c6199aeaa28c31d7202e1f
                2defd784463fa5243564e855ed717de1 8974907d8e169bef5f5b96bc506ae45d
octmnist        c68d92d5b585d8d81f7112f81e2d0842 e229e9440236b774d9f0dfef9d07bdaf
                0a97e76651ace45c5d943ee3f65b63ae abc493b6d529d5de7569faaef2773ba3
pneumoniamnist  28209eda62fecd6e6a2d98b1501bb15f 8f4eceb4ccffa70c672198ea285246c6
                05b46931834c231683c68f40c47b2971 d6a3c71de1b945ea11211b03746c1fe1
retinamnist     bd4c0672f1bba3e3a89f0e4e876791e4 afda852cc34dcda56f86ad2b2457dbcc
                e48e916a24454daf90583d4e6efb1a18 eae7e3b6f3fcbda4ae613ebdcbe35348
breastmnist     750601b1f35ba3300ea97c75c52ff8f6 742edef2a1fd1524b2efff4bd7ba9364
                363e4b3f8d712e9b5de15470a2aaadf1 b56378a6eefa9fed602bb16d192d4c8b
bloodmnist      7053d0359d879ad8a5505303e11de1dc 2b94928a2ae4916078ca51e05b6b800b
                adace1e0ed228fccda1f39692059dd4c b718ff6835fcbdb22ba9eacccd7b2601
tissuemnist     ebe78ee8b05294063de985d821c1c34b 123ece2eba09d0aa5d698fda57103344
                61b955355d7425a89687b06cca3ce0c2 b077128c4a949f0a4eb01517f9037b9c
organamnist     68e3f8846a6bd62f0c9bf841c0d9eacc 2dcccc29b88e6da5a01161ef20cda288
                eeae80d0a227a8d099027e1b3cfd3b60 50747347e05c87dd3aaf92c49f9f3170
organcmnist     b9ceb9546e10131b32923c5bbeaea2b1 3ce34a8724ea6f548e6db4744d03b6a9
                773c1f009daa3fe5d9a2a201b2a7ed94 050f5e875dc056f6768abf94ec9995d1
organsmnist     9ab87b696fb54e2a387ebe992d6ed5f1 53a6d115339d874c25e309a994ff46d3
                ded0c5fa01a95dc4978b956f613e9b8e b354719e553fbbb2513d5533f52a4cb1
organmnist3d    a0c5a1ff56af4f155c46d46fbb45a2fe 58a2205adf14a9d0a189cb06dc78bf10
nodulemnist3d   8755a7e9e05a4d9ce80a24c3e7a256f3 c47c5b7d457bf6332200d2ea6d64ecd8
adrenalmnist3d  bbd3c5a5576322bc4cdfea780653b1ce 17721accfe9fb005146a47d33bc54b2f
fracturemnist3d 6aa7b0143a6b42da40027a9dda61302f f01d7e6316aedf4210da0da5b7437b42
vesselmnist3d   b41fd4f7e7e2feedddb201585ecafa1b 6bb274a8846e1097066dcd64e2c4520f
synapsemnist3d  1235b78a3cd6280881dd7850a78eadb6 43bd14ebf3af9d3dd072446fedc14d5e
"""


def file_name(flavour: str, size: int) -> str:
    """The official file name of ``flavour`` at ``size`` px."""
    return f"{flavour}.npz" if size == 28 else f"{flavour}_{size}.npz"


def _parse_md5(table: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for token in table.split():
        if len(token) != 32:
            flavour, sizes = token, iter(SIZES[2])
        else:
            sums[file_name(flavour, next(sizes))] = token
    return sums


MD5: dict[str, str] = _parse_md5(_MD5_TABLE)
"""File name -> md5 of the official MedMNIST files."""


@dataclass
class MedMNISTConfig(FolderDataConfig):
    """One MedMNIST set (``flavour``) at one ``size`` (28, 64, 128, 224; 3D sets 28 or 64), official split.

    ``root`` is the folder holding the file or the .npz itself; unset, ``$LIGHTNING_SSL_DATA/medmnist``
    (default ``~/.cache/lightning_ssl/medmnist``). A missing file is downloaded from Zenodo (md5-checked)
    when ``download`` is true. Images whose size differs from ``patch_size`` are resized once at setup
    (bilinear in 2D, antialiased; trilinear in 3D) and kept as uint8.
    """

    name: str = "medmnist"
    flavour: str = "pneumoniamnist"
    size: int = 28
    download: bool = True
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [28, 28])
    batch_size: int = 64


def url_of(name: str) -> str:
    """The download address of the official file ``name``."""
    return f"{BASE_URL}/{name}?download=1"


def cache_dir() -> Path:
    """Where MedMNIST files live when ``data.root`` is unset."""
    base = os.environ.get("LIGHTNING_SSL_DATA")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "lightning_ssl") / "medmnist"


def _by_hand(name: str, dest: Path) -> str:
    return f"fetch {url_of(name)} and put it at {dest} (or point data.root at a folder holding {name})"


def md5_file(path: Path) -> str:
    """Hex md5 of the file at ``path``."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(name: str, dest: Path) -> Path:
    """Download the official file ``name`` to ``dest`` (progress bar, resume, retries) and check its md5."""
    url = url_of(name)
    try:
        download(url, dest, what=name)
    except (DownloadError, OSError) as error:
        reason = one_line(error.__cause__ or error)
        raise FileNotFoundError(f"{dest} is missing and downloading it failed ({reason}): {_by_hand(name, dest)}") from None
    got = md5_file(dest)
    if got != MD5[name]:
        dest.unlink()
        raise ChecksumError(f"downloaded {name} from {url} has md5 {got}, expected {MD5[name]}; it was deleted")
    return dest


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The six arrays of a MedMNIST file, checked for keys and matching image/label counts."""
    advice = "is it complete? delete it and fetch it again"
    if not zipfile.is_zipfile(path):
        raise DataError(f"cannot read {path}: not an npz (zip) archive ({advice})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in KEYS if key not in archive.files]
            arrays = {key: archive[key] for key in KEYS if key not in missing}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"cannot read {path}: {one_line(error)} ({advice})") from None
    if missing:
        raise DataError(f"{path} lacks the keys {missing} of a MedMNIST file (it has {sorted(archive.files)})")
    for split in SPLITS:
        images, labels = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if images != labels:
            raise DataError(f"{path}: {split}_images holds {images} images but {split}_labels {labels} labels")
    return arrays


def channels_first(images: np.ndarray, spatial_dims: int, path: Path) -> torch.Tensor:
    """uint8 images (N, *spatial[, C]) as a tensor (N, C, *spatial); ConfigError unless they are ``spatial_dims``-D."""
    has_channels = images.ndim >= 4 and images.shape[-1] in (1, 3)
    dims = images.ndim - 1 - int(has_channels)
    if dims != spatial_dims:
        shape = list(images.shape[1 : 1 + dims])
        raise ConfigError(
            f"{path} holds {dims}D images of shape {tuple(images.shape[1:])} but data.spatial_dims={spatial_dims}: "
            f"set data.spatial_dims={dims} data.patch_size={shape}"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path} holds {images.dtype} images: expected uint8 as in the official MedMNIST files")
    tensor = torch.from_numpy(images)
    return torch.movedim(tensor, -1, 1).contiguous() if has_channels else tensor.unsqueeze(1)


def resize(images: torch.Tensor, size: list[int], chunk: int = 1024) -> torch.Tensor:
    """uint8 images (N, C, *spatial) resized to ``size`` (bilinear antialiased in 2D, trilinear in 3D), still uint8."""
    mode = "bilinear" if len(size) == 2 else "trilinear"
    parts = [
        F.interpolate(part.float(), size=size, mode=mode, align_corners=False, antialias=mode == "bilinear")
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for part in images.split(chunk)
    ]
    return torch.cat(parts)


class MedMNISTDataset(Dataset):
    """One split in memory; items ``image`` (C, *spatial) float32 in [0, 1], ``label``, ``index`` (in the split)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def class_labels(self) -> list[int] | None:
        """The class of every item (for label budgets); None for multi-label sets."""
        return self.labels.tolist() if self.labels.dim() == 1 else None

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[index].float().div_(255)
        return {"image": image, "label": self.labels[index], "index": torch.tensor(index, dtype=torch.int64)}


def as_labels(labels: np.ndarray) -> torch.Tensor:
    """(N,) int64 class labels from (N, 1); (N, K) float32 0/1 for multi-label sets (chestmnist)."""
    labels = labels.reshape(len(labels), -1)
    if labels.shape[1] == 1:
        return torch.from_numpy(labels[:, 0].astype(np.int64))
    return torch.from_numpy(labels.astype(np.float32))


def check_labels(labels: torch.Tensor, num_classes: int, path: Path, split: str) -> None:
    """DataError naming the file, the split and the values when a class label lies outside 0..num_classes-1 (or a
    multi-label entry is not 0 or 1): caught here rather than as an IndexError mid-training."""
    allowed = (0, 1) if labels.dim() == 2 else tuple(range(num_classes))
    values = torch.unique(labels).tolist()
    wrong = [v for v in values if v not in allowed]
    if wrong:
        shown = ", ".join(f"{v:g}" for v in wrong[:8]) + (", ..." if len(wrong) > 8 else "")
        expected = "0 or 1 (multi-label)" if labels.dim() == 2 else f"0..{num_classes - 1} ({num_classes} classes)"
        raise DataError(f"{path}: {split}_labels hold the value(s) {shown}, expected {expected}: fix the file or data.flavour")


@DATASETS.register("medmnist")
@DATASETS.register("pneumoniamnist")
class MedMNISTDataModule(BaseDataModule):
    """A MedMNIST set with its official split; ``label`` is an int64 class, or a float 0/1 vector for chestmnist."""

    Config = MedMNISTConfig

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._arrays: dict[str, np.ndarray] | None = None

    @property
    def info(self) -> DataInfo:
        """Channels, classes and modality from the flavour table (read from the file for an unknown flavour)."""
        cfg = self.config
        known = FLAVOURS.get(cfg.flavour) or self._flavour_from_file()
        return DataInfo(
            spatial_dims=cfg.spatial_dims,
            in_channels=known.channels,
            channel_names=["R", "G", "B"] if known.channels == 3 else [known.channel_name],
            patch_size=list(cfg.patch_size),
            intensity=INTENSITY,
            modality=known.modality,
            axes="H,W" if cfg.spatial_dims == 2 else "as stored in the MedMNIST file",
            num_classes=len(known.class_names),
            class_names=list(known.class_names),
        )

    def _flavour_from_file(self) -> Flavour:
        """A file in the MedMNIST layout under an unknown flavour name: channels and class count from its arrays."""
        arrays = self._read()
        channels = 3 if arrays["train_images"].ndim >= 4 and arrays["train_images"].shape[-1] == 3 else 1
        labels = np.concatenate([as_labels(arrays[f"{split}_labels"]).numpy() for split in SPLITS])
        classes = labels.shape[1] if labels.ndim == 2 else int(labels.max()) + 1
        return Flavour(self.config.spatial_dims, channels, "grayscale", "see medmnist.com", tuple(map(str, range(classes))))

    def path(self) -> Path:
        """The file this config names, downloaded first when absent and ``download`` is true."""
        cfg = self.config
        name = file_name(cfg.flavour, cfg.size)
        root = cache_dir() if cfg.root is None else Path(cfg.root).expanduser()
        path = root if root.suffix == ".npz" else root / name
        if cfg.flavour not in FLAVOURS and not path.is_file():
            close = difflib.get_close_matches(cfg.flavour, list(FLAVOURS), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown MedMNIST flavour {cfg.flavour!r} (no file {path}); known: {', '.join(FLAVOURS)}{hint}")
        dims = FLAVOURS[cfg.flavour].spatial_dims if cfg.flavour in FLAVOURS else cfg.spatial_dims
        if cfg.size not in SIZES[dims]:
            raise ConfigError(f"data.size={cfg.size} is not a MedMNIST size of {cfg.flavour}: use one of {SIZES[dims]}")
        if path.is_file():
            return path
        if not cfg.download:
            raise FileNotFoundError(f"{path} is missing and data.download=false: {_by_hand(name, path)}")
        return fetch(name, path)

    def _read(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = read_npz(self.path())
        return self._arrays

    def prepare_data(self) -> None:
        """Download the file when it is absent (Lightning calls this once per node)."""
        self.path()

    def make_splits(self) -> dict[str, MedMNISTDataset]:
        """Read the file into memory, check its layout against the config, resize to ``patch_size`` if needed."""
        cfg, path, arrays = self.config, self.path(), self._read()
        info = self.info
        splits = {}
        for split in SPLITS:
            images = channels_first(arrays[f"{split}_images"], cfg.spatial_dims, path)
            if images.shape[1] != info.in_channels:
                raise DataError(f"{path} holds {images.shape[1]}-channel images but {cfg.flavour} has {info.in_channels}")
            if list(images.shape[2:]) != list(cfg.patch_size):
                images = resize(images, list(cfg.patch_size))
            labels = as_labels(arrays[f"{split}_labels"])
            check_labels(labels, info.num_classes, path, split)
            splits[split] = MedMNISTDataset(images, labels)
        self._arrays = None
        return splits
