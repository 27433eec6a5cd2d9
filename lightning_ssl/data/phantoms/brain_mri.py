"""Deterministic procedural brain-MRI phantoms: four skull-stripped modalities and BraTS tumour labels.

For trying the pipeline end to end (segmentation, semi-supervised methods) with no download, not for results:
the anatomy and contrasts are only roughly MR-like.

Volumes are indexed ``(X, Y, Z)``: X runs from the patient's right to left, Y from anterior to posterior
and Z from foot to head. The head is laid out in millimetres of a fixed field of view (192 x 192 x 128 mm,
2 mm voxels at the default shape) and sampled onto the requested grid, so every shape shows the same
patient at another resolution. Channels are (t1, t1ce, t2, flair); labels follow the canonical BraTS map
(0 background, 1 necrotic core, 2 edema, 3 enhancing tumour). Whether a patient has a tumour depends only
on the seed and the tumour probability, and the probability changes nothing else: the same seed with
probabilities 0 and 1 gives a healthy and a diseased version of one patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_ssl.data.phantoms.noise import smooth_noise
from lightning_ssl.metrics.brats_labels import BACKGROUND, EDEMA, ENHANCING, NECROTIC_CORE

_MIN_AXIS = 32
FIELD_OF_VIEW_MM = np.array([192.0, 192.0, 128.0])  # (X, Y, Z) extent of every volume, whatever its shape

_WHITE, _GREY, _CSF, _EDEMA, _ENHANCING, _NECROSIS = range(6)
# Mean signal of each tissue (rows, in the order above) in (t1, t1ce, t2, flair), arbitrary scanner units.
_SIGNAL = np.array(
    [
        [820.0, 840.0, 310.0, 380.0],
        [560.0, 580.0, 470.0, 520.0],
        [220.0, 230.0, 1250.0, 140.0],
        [470.0, 490.0, 980.0, 900.0],
        [600.0, 1350.0, 720.0, 760.0],
        [300.0, 320.0, 1100.0, 520.0],
    ],
    dtype=np.float32,
)
_LABEL_OF_TISSUE = np.array([BACKGROUND, BACKGROUND, BACKGROUND, EDEMA, ENHANCING, NECROTIC_CORE], dtype=np.uint8)
_COARSE_CELLS = {"surface": 6, "folds": 14, "texture": 20, "bias": 3, "tumour": 5, "edema": 6}


@dataclass(frozen=True, eq=False)
class BrainMRIPhantom:
    """One synthetic skull-stripped brain MRI with its brain mask and tumour labels.

    ``image`` is (4, X, Y, Z) float32 raw MR-like intensities of (t1, t1ce, t2, flair): positive in the
    brain and exactly 0 outside it. ``labels`` is the canonical BraTS label map (uint8, values in {0, 1, 2, 3}).
    """

    patient_id: str
    image: np.ndarray
    brain_mask: np.ndarray
    labels: np.ndarray
    has_tumour: bool


@dataclass(frozen=True)
class _Tumour:
    """A tumour: centre (mm), whole-tumour semi-axes (mm), core and necrosis radii as fractions of them."""

    centre: np.ndarray
    semi_axes: np.ndarray
    core: float
    necrosis: float


@dataclass(frozen=True)
class _Layout:
    """The random anatomy, scanner and tumour of one patient, in millimetres."""

    centre: np.ndarray
    semi_axes: np.ndarray
    base_flattening: float
    cortex: float
    ventricle_offset: float
    ventricle_axes: np.ndarray
    nuclei_offset: float
    gains: np.ndarray
    noise: float
    bias: float
    tumour: _Tumour | None


def brain_mri_phantom(seed: int, shape: tuple[int, int, int] = (96, 96, 64), tumour_probability: float = 0.8) -> BrainMRIPhantom:
    """A synthetic four-modality brain MRI for patient number ``seed``, identical for the same arguments."""
    shape = _validated_shape(shape)
    if not 0.0 <= tumour_probability <= 1.0:
        raise ValueError(f"tumour_probability must lie in [0, 1], got {tumour_probability}")
    rng = np.random.default_rng(seed)
    layout = _sample_layout(rng, tumour_probability)
    coarse = {name: rng.standard_normal((cells,) * 3).astype(np.float32) for name, cells in _COARSE_CELLS.items()}
    x, y, z = _coordinates(shape)
    radius = _brain_radius(x, y, z, layout) / (1.0 + 0.03 * np.clip(smooth_noise(coarse["surface"], shape), -2.0, 2.0))
    brain = radius <= 1.0
    tissue = _healthy_tissue(x, y, z, layout, radius, smooth_noise(coarse["folds"], shape))
    if layout.tumour is not None:
        _paint_tumour(tissue, x, y, z, layout.tumour, coarse, brain)
    image = _intensities(tissue, brain, layout, coarse, rng)
    return BrainMRIPhantom(f"brain-{seed:04d}", image, brain, _LABEL_OF_TISSUE[tissue], layout.tumour is not None)


def _validated_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The shape as three ints, or a ValueError naming the minimum axis size."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < _MIN_AXIS:
        raise ValueError(f"brain_mri_phantom needs a 3-D shape of at least {_MIN_AXIS} voxels per axis, got {shape}")
    return shape


def _sample_layout(rng: np.random.Generator, tumour_probability: float) -> _Layout:
    """Draw one patient's head, scanner and tumour; the same draws whatever the probability."""
    centre = rng.uniform(-3.0, 3.0, 3) + np.array([0.0, 0.0, -4.0])
    semi_axes = np.array([68.0, 82.0, 54.0]) * rng.uniform(0.93, 1.06, 3)
    tumour = _sample_tumour(rng, centre, semi_axes)
    present = rng.random() < tumour_probability
    return _Layout(
        centre=centre,
        semi_axes=semi_axes,
        base_flattening=float(rng.uniform(0.8, 0.9)),
        cortex=float(rng.uniform(0.76, 0.82)),
        ventricle_offset=float(rng.uniform(6.0, 9.0)),
        ventricle_axes=np.array([6.0, 24.0, 9.0]) * rng.uniform(0.8, 1.25, 3),
        nuclei_offset=float(rng.uniform(16.0, 20.0)),
        gains=rng.uniform(0.85, 1.15, 4).astype(np.float32),
        noise=float(rng.uniform(0.015, 0.03)),
        bias=float(rng.uniform(0.04, 0.1)),
        tumour=tumour if present else None,
    )


def _sample_tumour(rng: np.random.Generator, brain_centre: np.ndarray, brain_axes: np.ndarray) -> _Tumour:
    """A tumour whose core lies well inside the brain: enhancing rim around necrosis, edema around both."""
    direction = rng.standard_normal(3)
    position = 0.35 * rng.random() ** (1.0 / 3.0)
    centre = brain_centre + brain_axes * position * direction / np.linalg.norm(direction)
    semi_axes = rng.uniform(16.0, 30.0) * rng.uniform(0.85, 1.15, 3)
    core = float(rng.uniform(0.5, 0.7))
    necrosis = core * float(rng.uniform(0.4, 0.65))
    # Keep the core, enlarged by the irregularity, within 0.9 of the radius of the flatter lower brain.
    room = (0.72 - position) * brain_axes.min() / 1.25
    semi_axes *= min(1.0, room / (core * semi_axes.max()))
    return _Tumour(centre, semi_axes, core, necrosis)


def _coordinates(shape: tuple[int, int, int]) -> list[np.ndarray]:
    """Millimetre coordinates of the voxel centres, centred in the field of view, shaped for broadcasting."""
    return [
        (((np.arange(n) + 0.5) / n - 0.5) * FIELD_OF_VIEW_MM[i])
        .astype(np.float32)
        .reshape([n if j == i else 1 for j in range(3)])
        for i, n in enumerate(shape)
    ]


def _ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: np.ndarray, semi_axes: np.ndarray) -> np.ndarray:
    """Squared normalised radius of an axis-aligned ellipsoid (<= 1 inside)."""
    return (
        np.square((x - centre[0]) / semi_axes[0])
        + np.square((y - centre[1]) / semi_axes[1])
        + np.square((z - centre[2]) / semi_axes[2])
    )


def _brain_radius(x: np.ndarray, y: np.ndarray, z: np.ndarray, layout: _Layout) -> np.ndarray:
    """Normalised radius of the brain ellipsoid, flatter below its centre (1 at the surface)."""
    cx, cy, cz = layout.centre
    ax, ay, az = layout.semi_axes
    az = np.where(z < cz, az * layout.base_flattening, az)
    return np.sqrt(np.square((x - cx) / ax) + np.square((y - cy) / ay) + np.square((z - cz) / az))


def _healthy_tissue(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, layout: _Layout, radius: np.ndarray, folds: np.ndarray
) -> np.ndarray:
    """Tissue classes of a healthy brain: folded cortex over white matter, deep grey nuclei, ventricles, CSF."""
    tissue = np.full(radius.shape, _GREY, dtype=np.uint8)
    tissue[radius + 0.07 * folds < layout.cortex] = _WHITE
    cx, cy, cz = layout.centre
    for side in (-1.0, 1.0):
        nuclei = np.array([cx + side * layout.nuclei_offset, cy + 2.0, cz - 4.0])
        tissue[_ellipsoid(x, y, z, nuclei, np.array([8.0, 13.0, 9.0])) <= 1.0] = _GREY
        ventricle = np.array([cx + side * layout.ventricle_offset, cy - 4.0, cz + 8.0])
        tissue[_ellipsoid(x, y, z, ventricle, layout.ventricle_axes) <= 1.0] = _CSF
    fissure = (np.abs(x - cx) < 1.5) & (radius > 0.6) & (z > cz)
    sulci = (radius > 0.965) & (folds > 0.3)
    tissue[fissure | sulci] = _CSF
    return tissue


def _paint_tumour(
    tissue: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    tumour: _Tumour,
    coarse: dict[str, np.ndarray],
    brain: np.ndarray,
) -> None:
    """Edema, then the enhancing core and its necrotic centre, on one irregular distance field."""
    shape = tissue.shape
    irregular = 1.0 + 0.1 * np.clip(smooth_noise(coarse["tumour"], shape), -2.0, 2.0)
    distance = np.sqrt(_ellipsoid(x, y, z, tumour.centre, tumour.semi_axes)) * irregular
    edema_edge = np.maximum(1.25 * tumour.core, 1.2 + 0.3 * smooth_noise(coarse["edema"], shape))
    tissue[(distance <= edema_edge) & brain] = _EDEMA
    tissue[distance <= tumour.core] = _ENHANCING
    tissue[distance <= tumour.necrosis] = _NECROSIS


def _intensities(
    tissue: np.ndarray, brain: np.ndarray, layout: _Layout, coarse: dict[str, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """(4, *shape) signal: tissue means with texture, a smooth bias field and noise in the brain; 0 outside it."""
    shape = tissue.shape
    inside = np.flatnonzero(brain)
    kinds = tissue.reshape(-1)[inside]
    shading = (1.0 + 0.05 * smooth_noise(coarse["texture"], shape)) * (1.0 + layout.bias * smooth_noise(coarse["bias"], shape))
    shading = shading.reshape(-1)[inside]
    noise = rng.standard_normal((4, inside.size), dtype=np.float32)
    image = np.zeros((4, tissue.size), dtype=np.float32)
    for channel, gain in enumerate(layout.gains):
        signal = _SIGNAL[kinds, channel] * shading * gain + noise[channel] * np.float32(layout.noise * 600.0 * gain)
        image[channel, inside] = np.maximum(signal, 1.0)
    return image.reshape(4, *shape)
