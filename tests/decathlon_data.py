"""Medical Segmentation Decathlon folders written by the tests: CT (one channel) or brain MRI (four channels, one 4D
NIfTI with the channels last, or nnU-Net's one file per channel), with or without imagesTs/labelsTs."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from omegaconf import OmegaConf

from lightning_ssl.data.decathlon import DecathlonDataModule

SHAPE = (24, 24, 20)
CT_LABELS = {"0": "background", "1": "lesion"}
MRI_LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumour", "3": "enhancing tumour"}
MRI_MODALITIES = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}


def grid(shape=SHAPE):
    """Coordinates in [-1, 1] along each axis."""
    return np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")


def ct_case(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """HU int16: air (-1000) around an ellipsoid body (about 40 HU) holding a lesion (120 HU) labelled 1."""
    rng = np.random.default_rng(seed)
    x, y, z = grid(shape)
    body = x**2 + y**2 < 0.8
    centre = rng.uniform(-0.3, 0.3, 3)
    lesion = (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 < 0.1
    hu = np.where(body, 40 + rng.normal(0, 10, shape), -1000)
    hu = np.where(lesion & body, 120, hu).astype(np.int16)
    return hu, (lesion & body).astype(np.uint8)


def mri_case(seed: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Four int16 channels (X, Y, Z, 4), zero outside an ellipsoid brain, and tumour labels 0..3 around its centre."""
    rng = np.random.default_rng(seed)
    x, y, z = grid(shape)
    radius = np.sqrt(x**2 + y**2 + z**2)
    brain = radius < 0.9
    channels = [np.where(brain, 100 * (k + 1) + 30 * x + rng.normal(0, 5, shape), 0) for k in range(4)]
    labels = np.select([radius < 0.15, radius < 0.3, radius < 0.45], [3, 2, 1], 0).astype(np.uint8)
    return np.stack(channels, axis=-1).astype(np.int16), labels


def save(array: np.ndarray, path: Path, spacing=(1.0, 1.0, 1.0)) -> Path:
    """``array`` as NIfTI at ``path`` with the given voxel size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), str(path))
    return path


def write_decathlon(
    root: Path,
    cases: int = 6,
    modality: str = "CT",
    test: str | None = None,
    per_channel_files: bool = False,
    names: list[str] | None = None,
    shape=SHAPE,
    spacing=(1.0, 1.0, 1.0),
) -> Path:
    """A Decathlon folder of ``cases`` training cases (named ``names`` or ``case_000``...) and, with ``test``
    ("labelled" or "unlabelled"), two test cases in imagesTs (with labelsTs when labelled)."""
    mri = modality == "MRI"
    make = mri_case if mri else ct_case
    names = names or [f"case_{i:03d}" for i in range(cases)]
    test_names = [f"test_{i:03d}" for i in range(2)] if test else []

    def write_image(image: np.ndarray, folder: str, name: str) -> None:
        if per_channel_files:
            for k in range(image.shape[-1]):
                save(image[..., k], root / folder / f"{name}_{k:04d}.nii.gz", spacing)
        else:
            save(image, root / folder / f"{name}.nii.gz", spacing)

    for i, name in enumerate(names + test_names):
        image, labels = make(i, shape)
        testing = name in test_names
        write_image(image, "imagesTs" if testing else "imagesTr", name)
        if not testing or test == "labelled":
            save(labels, root / ("labelsTs" if testing else "labelsTr") / f"{name}.nii.gz", spacing)
    description = {
        "name": "fixture",
        "modality": MRI_MODALITIES if mri else {"0": "CT"},
        "labels": MRI_LABELS if mri else CT_LABELS,
        "numTraining": len(names),
        "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names],
        "test": [f"./imagesTs/{n}.nii.gz" for n in test_names],
    }
    (root / "dataset.json").write_text(json.dumps(description, indent=1))
    return root


def decathlon(root: Path, **settings) -> DecathlonDataModule:
    """The DataModule of a folder with small patches."""
    settings = {"patch_size": [16, 16, 16], "batch_size": 2, **settings}
    return DecathlonDataModule(OmegaConf.structured(DecathlonDataModule.Config(root=str(root), **settings)))


def set_up(root: Path, evaluation_data: str = "patches", **settings) -> DecathlonDataModule:
    """The DataModule set up, scoring ``evaluation_data`` as a method would ask."""
    dm = decathlon(root, **settings)
    dm.evaluation_data = evaluation_data
    dm.setup("fit")
    return dm
