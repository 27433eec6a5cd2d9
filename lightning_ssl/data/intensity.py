"""Modality-correct intensity preprocessing and body masks."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from monai.transforms import ScaleIntensityRange


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
