"""Deterministic procedural chest radiographs (PA view), normal or with pneumonia, and their lung masks.

For trying the pipeline end to end (classification, lung segmentation, semi-supervised methods) with no
download, not for results: the anatomy is only roughly radiograph-like.

Images are ``(H, W)`` in the radiological convention: the patient's right on the image's left, head at the
top, dense tissue bright. The anatomy is laid out in coordinates running from -1 to 1 across the image, so
every size shows the same patient at another resolution. Pneumonia adds patchy consolidation inside the
lungs and changes nothing else: the same seed with and without pneumonia gives one patient, healthy and ill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_ssl.data.phantoms.noise import smooth_noise

_MIN_SIZE = 16
_RIBS = 10


@dataclass(frozen=True, eq=False)
class ChestXRayPhantom:
    """One synthetic PA chest radiograph: ``image`` (H, W) float32 in [0, 1], ``lung_mask`` (H, W) uint8 {0, 1}
    of both lung fields (heart and mediastinum excluded), ``label`` 0 normal or 1 pneumonia."""

    patient_id: str
    image: np.ndarray
    lung_mask: np.ndarray
    label: int


@dataclass(frozen=True)
class _Lung:
    """One lung field: centre line, half width, apex and diaphragm heights, dome height."""

    cx: float
    half_width: float
    apex: float
    base: float
    dome: float


@dataclass(frozen=True)
class _Layout:
    """The random anatomy and exposure of one patient, in image coordinates (-1 to 1)."""

    angle: float
    shift: np.ndarray
    scale: float
    body_width: float
    lungs: tuple[_Lung, _Lung]
    mediastinum: float
    heart: tuple[float, float, float, float]
    rib_top: float
    rib_spacing: float
    rib_curve: float
    contrast: float
    blur: float
    noise: float
    blobs: np.ndarray


def chest_xray_phantom(seed: int, size: int | tuple[int, int] = 128, pneumonia: bool = False) -> ChestXRayPhantom:
    """A synthetic PA chest radiograph of patient ``seed``, ``size`` (H, W) or square pixels, identical for the same arguments."""
    height, width = _validated_size(size)
    rng = np.random.default_rng(seed)
    layout = _sample_layout(rng)
    patchiness = rng.standard_normal((8, 8)).astype(np.float32)
    noise = rng.standard_normal((height, width), dtype=np.float32)
    u, v = _coordinates(height, width, layout)
    lungs = _lung_fields(u, v, layout)
    heart = _heart(u, v, layout)
    lung_mask = lungs & (heart > 1.0) & (np.abs(u) >= _mediastinum_half_width(v, layout))
    density = _soft_tissue(u, v, layout, heart) - _aeration(u, layout, lung_mask) + _bones(u, v, layout)
    if pneumonia:
        density += _consolidation(u, v, layout, lung_mask, smooth_noise(patchiness, (height, width)))
    density = _blurred(density, layout.blur * min(height, width) / 128.0)
    image = 1.0 - np.exp(-layout.contrast * np.maximum(density, 0.0)) + layout.noise * noise
    return ChestXRayPhantom(
        f"xray-{seed:04d}", np.clip(image, 0.0, 1.0).astype(np.float32), lung_mask.astype(np.uint8), int(pneumonia)
    )


def _validated_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) from an int or a pair, or a ValueError naming the minimum size."""
    pair = (size, size) if np.isscalar(size) else tuple(size)
    if len(pair) != 2 or min(int(n) for n in pair) < _MIN_SIZE:
        raise ValueError(f"chest_xray_phantom needs a size of at least {_MIN_SIZE} pixels per axis, got {size}")
    return int(pair[0]), int(pair[1])


def _sample_layout(rng: np.random.Generator) -> _Layout:
    """Draw one patient's pose, habitus, organs, exposure and (used only with pneumonia) consolidation blobs."""

    def u(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    lungs = tuple(
        _Lung(
            cx=side * u(0.4, 0.46),
            half_width=u(0.27, 0.33),
            apex=u(-0.78, -0.68),
            base=u(0.42, 0.55) + (0.05 if side > 0 else 0.0),
            dome=u(0.12, 0.2),
        )
        for side in (-1.0, 1.0)
    )
    return _Layout(
        angle=u(-0.05, 0.05),
        shift=rng.uniform(-0.04, 0.04, 2),
        scale=u(0.95, 1.05),
        body_width=u(0.82, 0.94),
        lungs=lungs,
        mediastinum=u(0.1, 0.13),
        heart=(u(0.1, 0.17), u(0.18, 0.26), u(0.3, 0.37), u(0.22, 0.28)),
        rib_top=u(-0.74, -0.68),
        rib_spacing=u(0.12, 0.14),
        rib_curve=u(0.45, 0.65),
        contrast=u(1.8, 2.2),
        blur=u(0.8, 1.2),
        noise=u(0.01, 0.02),
        # Consolidation blobs: side, height (0 apex .. 1 base), lateral position, size, strength.
        blobs=np.column_stack(
            [
                rng.integers(0, 2, 5),
                rng.uniform(0.25, 0.95, 5),
                rng.uniform(-0.5, 0.5, 5),
                rng.uniform(0.08, 0.16, 5),
                rng.uniform(0.3, 0.5, 5) * (np.arange(5) < rng.integers(2, 6)),
            ]
        ),
    )


def _coordinates(height: int, width: int, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Patient coordinates (u across, v down, -1 to 1) of the pixel centres, posed (rotation, shift, scale)."""
    rows = (((np.arange(height) + 0.5) / height) * 2.0 - 1.0).astype(np.float32)[:, None]
    cols = (((np.arange(width) + 0.5) / width) * 2.0 - 1.0).astype(np.float32)[None, :]
    cos, sin = np.cos(layout.angle), np.sin(layout.angle)
    u = (cos * cols - sin * rows - layout.shift[0]) / layout.scale
    v = (sin * cols + cos * rows - layout.shift[1]) / layout.scale
    return u.astype(np.float32), v.astype(np.float32)


def _lung_half_width(lung: _Lung, v: np.ndarray) -> np.ndarray:
    """Half width of a lung field at height ``v``: rounded apex, full width below."""
    apex_height = 0.35 * (lung.base - lung.apex)
    rise = np.clip((lung.apex + apex_height - v) / apex_height, 0.0, 1.0)
    return lung.half_width * np.sqrt(np.clip(1.0 - rise * rise, 0.0, 1.0)) * (v >= lung.apex)


def _lung_fields(u: np.ndarray, v: np.ndarray, layout: _Layout) -> np.ndarray:
    """Both lung fields (mediastinum and heart not yet removed): apex, lateral walls, domed diaphragms."""
    mask = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for lung in layout.lungs:
        across = (u - lung.cx) / lung.half_width
        diaphragm = lung.base - lung.dome * np.clip(1.0 - np.square(across + 0.3 * np.sign(lung.cx)), 0.0, 1.0)
        mask |= (np.abs(u - lung.cx) <= _lung_half_width(lung, v)) & (v <= diaphragm)
    return mask


def _heart(u: np.ndarray, v: np.ndarray, layout: _Layout) -> np.ndarray:
    """Squared normalised radius of the heart's ellipse (<= 1 inside), left of the patient's midline."""
    hx, hy, ha, hb = layout.heart
    return np.square((u - hx) / ha) + np.square((v - hy) / hb)


def _chord(squared_radius: np.ndarray) -> np.ndarray:
    """Path length through a unit cylinder or sphere at a squared normalised radius (0 outside)."""
    return np.sqrt(np.clip(1.0 - squared_radius, 0.0, 1.0))


def _mediastinum_half_width(v: np.ndarray, layout: _Layout) -> np.ndarray:
    """Half width of the mediastinum at height ``v``, widening toward the heart."""
    return layout.mediastinum * (1.0 + 0.3 * np.clip(v + 0.2, 0.0, 1.0))


def _soft_tissue(u: np.ndarray, v: np.ndarray, layout: _Layout, heart: np.ndarray) -> np.ndarray:
    """Body with shoulders and neck, mediastinum, heart, aortic knob and the spine; the trachea's air column."""
    shoulders = np.clip((v + 0.95) / 0.35, 0.0, 1.0)
    half_width = 0.24 + (layout.body_width - 0.24) * shoulders * shoulders * (3.0 - 2.0 * shoulders)
    density = 0.55 * _chord(np.square(u / half_width))
    density += 0.22 * _chord(np.square(u / _mediastinum_half_width(v, layout))) * (v < 0.6)
    density += 0.35 * _chord(heart)
    density += 0.15 * _chord((np.square(u - 0.1) + np.square(v + 0.42)) / 0.07**2)
    vertebrae = 0.75 + 0.25 * np.cos(2.0 * np.pi * v / 0.11)
    density += 0.12 * _chord(np.square(u / 0.07)) * vertebrae
    density -= 0.12 * _chord(np.square(u / 0.035)) * (v < -0.4)
    return density


def _aeration(u: np.ndarray, layout: _Layout, lung_mask: np.ndarray) -> np.ndarray:
    """How much the air in the lungs lowers the density: most in the middle of each lung field."""
    air = np.zeros(lung_mask.shape, dtype=np.float32)
    for lung in layout.lungs:
        air = np.maximum(air, _chord(np.square((u - lung.cx) / (1.3 * lung.half_width))))
    return (0.2 + 0.16 * air) * lung_mask


def _bones(u: np.ndarray, v: np.ndarray, layout: _Layout) -> np.ndarray:
    """Posterior ribs as arcs from the spine curving down laterally, and both clavicles."""
    lateral = np.abs(u) - 0.06
    inside = (lateral > 0.0) & (np.abs(u) < layout.body_width - 0.04) & (v > -0.85)
    density = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=np.float32)
    for rib in range(_RIBS):
        centre = layout.rib_top + rib * layout.rib_spacing - 0.12 * lateral + layout.rib_curve * np.square(lateral)
        density += 0.09 * _chord(np.square((v - centre) / 0.025))
    clavicle = -0.66 - 0.2 * lateral + 0.15 * np.square(lateral)
    density += 0.2 * _chord(np.square((v - clavicle) / 0.03)) * (lateral < 0.65)
    return density * inside


def _consolidation(u: np.ndarray, v: np.ndarray, layout: _Layout, lung_mask: np.ndarray, patchiness: np.ndarray) -> np.ndarray:
    """Patchy hazy opacities inside the lungs: Gaussian blobs modulated by smooth noise."""
    density = np.zeros(lung_mask.shape, dtype=np.float32)
    for side, height, across, size, strength in layout.blobs:
        lung = layout.lungs[int(side)]
        cy = lung.apex + height * (lung.base - lung.dome - lung.apex)
        cx = lung.cx + across * lung.half_width
        density += strength * np.exp(-(np.square(u - cx) + np.square(v - cy)) / (2.0 * size * size))
    return density * np.clip(0.8 + 0.4 * patchiness, 0.2, 1.5) * lung_mask


def _blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of ``sigma`` pixels (weights renormalised at the edges), as two small matrix products."""

    def kernel(n: int) -> np.ndarray:
        index = np.arange(n)
        weights = np.exp(-np.square(index[:, None] - index[None, :]) / (2.0 * sigma * sigma))
        return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)

    return kernel(image.shape[0]) @ image @ kernel(image.shape[1]).T
