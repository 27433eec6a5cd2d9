"""Noise shared by the phantoms: smooth random fields that look the same at every resolution."""

from __future__ import annotations

import numpy as np


def smooth_noise(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Smooth noise of about unit variance on ``shape``: a coarse standard-normal grid (any dimension, at least
    3 cells per axis) spanning the whole array, interpolated; the same pattern at every resolution."""
    field = coarse
    for axis, n in enumerate(shape):
        cells = coarse.shape[axis]
        position = (np.arange(n) + 0.5) / n * (cells - 1)
        low = np.minimum(position.astype(int), cells - 2)
        weight = position - low
        weight = (weight * weight * (3.0 - 2.0 * weight)).astype(np.float32)
        weight = weight.reshape([n if a == axis else 1 for a in range(field.ndim)])
        field = field.take(low, axis) * (1.0 - weight) + field.take(low + 1, axis) * weight
    return field * np.float32(1.6)
