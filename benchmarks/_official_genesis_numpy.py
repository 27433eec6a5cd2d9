"""A per-sample NumPy port of the official Models Genesis ``generate_pair`` (Zhou et al. 2019).

Written from the authors' ``pytorch/utils.py`` algorithm as the reference for the benchmark and
the tests: one sample at a time, Python's ``random`` for every scalar choice and NumPy's global
random state (``np.random``) for shuffles and noise, exactly like the original. Arrays are
``(B, 1, X, Y, Z)`` batches; each sample is handled as the original's ``(1, X, Y, Z)`` array, so
the flip axis is drawn from {0, 1, 2} of that array (axis 0 is the channel: a no-op). The batch
sampling (``random.shuffle`` of the dataset index) is left out: only the corruption is ported.
"""

from __future__ import annotations

import math
import random

import numpy as np

FLIP_RATE = 0.4
LOCAL_RATE = 0.5
NONLINEAR_RATE = 0.9
PAINT_RATE = 0.9
INPAINT_RATE = 0.2


def flip_pair(x: np.ndarray, y: np.ndarray, rate: float, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Flip ``x`` and ``y`` (one ``(1, X, Y, Z)`` sample each) along axis 0, 1 or 2 while ``rand < rate``, at most 3 times."""
    remaining = 3
    while rng.random() < rate and remaining > 0:
        axis = rng.choice([0, 1, 2])
        x, y = np.flip(x, axis=axis), np.flip(y, axis=axis)
        remaining -= 1
    return x, y


def local_pixel_shuffling(x: np.ndarray, rng: random.Random, np_rng: np.random.RandomState, blocks: int = 10_000) -> np.ndarray:
    """Shuffle ``blocks`` random windows of channel 0, each read from the original sample."""
    original = x.copy()
    out = x.copy()
    _, rows, cols, deps = x.shape
    for _ in range(blocks):
        sx, sy, sz = rng.randint(1, rows // 10), rng.randint(1, cols // 10), rng.randint(1, deps // 10)
        px, py, pz = rng.randint(0, rows - sx), rng.randint(0, cols - sy), rng.randint(0, deps - sz)
        window = original[0, px : px + sx, py : py + sy, pz : pz + sz].flatten()
        np_rng.shuffle(window)
        out[0, px : px + sx, py : py + sy, pz : pz + sz] = window.reshape(sx, sy, sz)
    return out


def bezier_curve(points: list[list[float]], samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The Bezier curve of ``points`` at ``samples`` steps, with the original's Bernstein ordering."""
    degree = len(points) - 1
    t = np.linspace(0.0, 1.0, samples)
    basis = np.array([math.comb(degree, i) * t ** (degree - i) * (1 - t) ** i for i in range(degree + 1)])
    control = np.array(points, dtype=np.float64)
    return control[:, 0] @ basis, control[:, 1] @ basis


def nonlinear_transformation(x: np.ndarray, rng: random.Random, samples: int = 100_000) -> np.ndarray:
    """Map intensities through a random Bezier curve; half of the time only the x values are sorted (inverted curve)."""
    points = [[0, 0], [rng.random(), rng.random()], [rng.random(), rng.random()], [1, 1]]
    xvals, yvals = bezier_curve(points, samples)
    if rng.random() < 0.5:
        xvals = np.sort(xvals)
    else:
        xvals, yvals = np.sort(xvals), np.sort(yvals)
    return np.interp(x, xvals, yvals)


def image_in_painting(x: np.ndarray, rng: random.Random, np_rng: np.random.RandomState) -> np.ndarray:
    """Fill up to 5 boxes (sides dim//6..dim//3, >= 3 voxels from the border) with uniform noise, in place."""
    _, rows, cols, deps = x.shape
    remaining = 5
    while remaining > 0 and rng.random() < 0.95:
        sx, sy, sz = rng.randint(rows // 6, rows // 3), rng.randint(cols // 6, cols // 3), rng.randint(deps // 6, deps // 3)
        px, py, pz = rng.randint(3, rows - sx - 3), rng.randint(3, cols - sy - 3), rng.randint(3, deps - sz - 3)
        x[:, px : px + sx, py : py + sy, pz : pz + sz] = np_rng.rand(sx, sy, sz)
        remaining -= 1
    return x


def _kept_box(rows: int, cols: int, deps: int, rng: random.Random) -> tuple[slice, slice, slice]:
    """One out-painting box: sides dim - randint(3*dim//7, 4*dim//7), >= 3 voxels from the border."""
    sx = rows - rng.randint(3 * rows // 7, 4 * rows // 7)
    sy = cols - rng.randint(3 * cols // 7, 4 * cols // 7)
    sz = deps - rng.randint(3 * deps // 7, 4 * deps // 7)
    px, py, pz = rng.randint(3, rows - sx - 3), rng.randint(3, cols - sy - 3), rng.randint(3, deps - sz - 3)
    return slice(px, px + sx), slice(py, py + sy), slice(pz, pz + sz)


def image_out_painting(x: np.ndarray, rng: random.Random, np_rng: np.random.RandomState) -> np.ndarray:
    """Replace the sample with uniform noise except for one kept box plus up to 4 more."""
    _, rows, cols, deps = x.shape
    original = x.copy()
    x = np_rng.rand(*x.shape)
    box = _kept_box(rows, cols, deps, rng)
    x[(slice(None), *box)] = original[(slice(None), *box)]
    remaining = 4
    while remaining > 0 and rng.random() < 0.95:
        box = _kept_box(rows, cols, deps, rng)
        x[(slice(None), *box)] = original[(slice(None), *box)]
        remaining -= 1
    return x


def official_generate_pair(
    batch: np.ndarray,
    rng: random.Random | None = None,
    np_rng: np.random.RandomState | None = None,
    flip_rate: float = FLIP_RATE,
    local_rate: float = LOCAL_RATE,
    nonlinear_rate: float = NONLINEAR_RATE,
    paint_rate: float = PAINT_RATE,
    inpaint_rate: float = INPAINT_RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt a ``(B, 1, X, Y, Z)`` batch sample by sample; returns (input, target).

    ``rng`` and ``np_rng`` default to the global ``random`` and ``np.random`` states, as in the original.
    """
    rng = rng if rng is not None else random._inst
    np_rng = np_rng if np_rng is not None else np.random.mtrand._rand
    y = batch.copy()
    x = batch.copy()
    for n in range(batch.shape[0]):
        x[n], y[n] = flip_pair(x[n], y[n], flip_rate, rng)
        if rng.random() < local_rate:
            x[n] = local_pixel_shuffling(x[n], rng, np_rng)
        if rng.random() < nonlinear_rate:
            x[n] = nonlinear_transformation(x[n], rng)
        if rng.random() < paint_rate:
            if rng.random() < inpaint_rate:
                x[n] = image_in_painting(x[n], rng, np_rng)
            else:
                x[n] = image_out_painting(x[n], rng, np_rng)
    return x, y
