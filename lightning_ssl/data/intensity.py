"""Modality-correct intensity preprocessing and body masks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from monai.transforms import ScaleIntensityRange

from lightning_ssl.schema import ConfigError

MRI_NORMALISATIONS = {
    "zscore": "per-modality z-score over brain voxels (non-zero), then min-max over the brain to [0, 1]; background 0",
    "minmax": "per-modality min-max over brain voxels (non-zero) to [0, 1]; background 0",
}


def window_hu(hu: np.ndarray, window: Sequence[float] = (-1000.0, 1000.0)) -> np.ndarray:
    """Clip Hounsfield units to ``window`` and scale them to [0, 1] (float32)."""
    low, high = float(window[0]), float(window[1])
    if high <= low:
        raise ValueError(f"HU window {list(window)} must be increasing")
    scale = ScaleIntensityRange(a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True, dtype=np.float32)
    return np.asarray(scale(np.asarray(hu, dtype=np.float32)))


def _fill_between(mask: np.ndarray, axis: int) -> np.ndarray:
    """True between the first and last true voxel of every line along ``axis``."""
    index = np.arange(mask.shape[axis]).reshape([-1 if a == axis else 1 for a in range(mask.ndim)])
    any_true = mask.any(axis=axis, keepdims=True)
    first = np.where(any_true, np.argmax(mask, axis=axis).reshape(any_true.shape), mask.shape[axis])
    last = mask.shape[axis] - 1 - np.argmax(np.flip(mask, axis=axis), axis=axis).reshape(any_true.shape)
    return (index >= first) & (index <= last)


def ct_body_mask(hu: np.ndarray, threshold: float = -500.0) -> np.ndarray:
    """Voxels inside the patient: tissue above ``threshold`` HU, with enclosed air (lungs) filled in each axial slice."""
    tissue = np.asarray(hu) > threshold
    return _fill_between(tissue, 0) & _fill_between(tissue, 1)


def intensity_of(normalisation: str) -> str:
    """The description of a ``data.mri_normalisation`` for the model's input contract; ConfigError for an unknown one."""
    if normalisation not in MRI_NORMALISATIONS:
        raise ConfigError(f"data.mri_normalisation={normalisation!r} is not one of {', '.join(MRI_NORMALISATIONS)}")
    return MRI_NORMALISATIONS[normalisation]


def normalise_mri(volume: np.ndarray, mode: str = "zscore") -> np.ndarray:
    """Per-channel MRI normalisation over brain voxels (non-zero), background kept at 0, float32.

    ``zscore``: (x - mean) / std of the brain voxels (the BraTS convention), then squashed to
    [0, 1] by min-max over the brain; ``minmax``: min-max over the brain voxels (what the Models
    Genesis authors advise for MRI). Either way the output is in [0, 1], like every other modality.
    """
    if mode not in MRI_NORMALISATIONS:
        raise ValueError(f"MRI normalisation {mode!r} is not one of zscore, minmax")
    out = np.zeros(volume.shape, dtype=np.float32)
    for channel, image in enumerate(np.asarray(volume, dtype=np.float32)):
        brain = image != 0
        if not brain.any():
            continue
        values = image[brain]
        if mode == "zscore":
            values = (values - values.mean()) / max(float(values.std()), 1e-6)
        low, high = float(values.min()), float(values.max())
        out[channel][brain] = (values - low) / max(high - low, 1e-6)
    return out


def scale_to_unit(image: np.ndarray, max_value: float | None = None) -> np.ndarray:
    """Scale an X-ray or ultrasound image to [0, 1] (float32): divide by ``max_value`` (e.g. 255, 4095),
    or min-max over the image when it is None."""
    image = np.asarray(image, dtype=np.float32)
    if max_value is not None:
        return np.clip(image / float(max_value), 0.0, 1.0)
    low, high = float(image.min()), float(image.max())
    return (image - low) / max(high - low, 1e-6)
