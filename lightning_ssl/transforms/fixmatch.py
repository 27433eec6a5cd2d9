"""FixMatch's weak and strong views of 2D images, as batched tensor operations on the batch's device.

Weak: horizontal flip and a small rotation/translation. Strong: the same, then RandAugment (``ops`` operations drawn
per sample from ``RAND_AUGMENT_OPS``, each applied with probability ``op_prob`` at a magnitude drawn per sample in
``1..magnitude`` out of 10, like FixMatch's RandAugmentMC that MultiMix uses, which draws ``1..magnitude - 1``) and a
cutout. Every random parameter is a tensor with one value per sample: there is no per-sample Python loop.

This is our own code because torchvision's RandAugment draws one set of operations per call (one for the whole
batch) and works on uint8 PIL-like images, and MONAI has no RandAugment; kornia is not a dependency. Images are
float ``(B, C, H, W)`` in [0, 1]; every op returns values in [0, 1] with the input's dtype and device.

Enhancement factors (brightness, contrast, sharpness) are ``1 ± 0.9 * m / 10`` (torchvision's convention), not
FixMatch-pytorch's ``0.05 + 0.9 * v / 10`` in which a larger magnitude distorts less. Rotations, shears and
translations are in normalised coordinates (exact for square images); pixels moved in from outside are black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

RAND_AUGMENT_OPS = (
    "identity",
    "autocontrast",
    "equalize",
    "brightness",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
MAX_ROTATION_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATION = 0.3
MAX_ENHANCEMENT = 0.9
CUTOUT_FILL = 0.5
LEVELS = 256


@dataclass
class FixMatchViewConfig:
    """Weak view: ``flip_prob``, rotation up to ``weak_rotation`` degrees, translation up to ``weak_translation`` of
    the image size. Strong view: the weak view, then ``ops`` RandAugment operations of magnitude up to ``magnitude``
    (1..10), each applied with ``op_prob``, then a gray square of side ``cutout`` x the image side (0 turns it off)."""

    flip_prob: float = 0.5
    weak_rotation: float = 10.0
    weak_translation: float = 0.125
    ops: int = 2
    magnitude: int = 10
    op_prob: float = 0.5
    cutout: float = 0.5


def _rand(shape: tuple[int, ...], images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) draws on the images' device, in their dtype."""
    return torch.rand(shape, device=images.device, generator=generator).to(images.dtype)


def _symmetric(shape: tuple[int, ...], images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [-1, 1) draws."""
    return 2.0 * _rand(shape, images, generator) - 1.0


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1), to broadcast over images."""
    return values.view(-1, 1, 1, 1)


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"FixMatch views take 2D images (B, C, H, W), got shape {tuple(images.shape)}")


def affine_matrices(
    angle: torch.Tensor, shear: torch.Tensor, translation: torch.Tensor, flip: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, 2, 3) ``affine_grid`` matrices: rotation ``angle`` (radians), ``shear`` (B, 2) along x and y,
    ``translation`` (B, 2) as fractions of the width and height, and a horizontal ``flip`` (bool, B)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    mirror = torch.ones_like(angle) if flip is None else 1.0 - 2.0 * flip.to(angle.dtype)
    first = torch.stack([cos * mirror, -sin + shear[:, 0], 2.0 * translation[:, 0]], dim=1)
    second = torch.stack([(sin + shear[:, 1]) * mirror, cos, 2.0 * translation[:, 1]], dim=1)
    return torch.stack([first, second], dim=1)


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample every image through its (2, 3) matrix (bilinear, black outside)."""
    grid = F.affine_grid(matrices.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0.0, 1.0)


def weak_view(images: torch.Tensor, config: FixMatchViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random horizontal flip, rotation and translation of every image."""
    _check_images(images)
    batch = images.shape[0]
    flip = _rand((batch,), images, generator) < config.flip_prob
    angle = math.radians(config.weak_rotation) * _symmetric((batch,), images, generator)
    translation = config.weak_translation * _symmetric((batch, 2), images, generator)
    return warp(images, affine_matrices(angle, torch.zeros_like(translation), translation, flip))


def autocontrast(images: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to the full [0, 1] range (constant channels unchanged)."""
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    span = high - low
    return torch.where(span > 0, (images - low) / span.clamp(min=1e-8), images)


def equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of each channel of each image over 256 grey levels (constant channels unchanged)."""
    levels = (images.clamp(0.0, 1.0) * (LEVELS - 1)).round().long().flatten(2)
    histogram = torch.zeros(*levels.shape[:2], LEVELS, device=images.device, dtype=images.dtype)
    histogram.scatter_add_(2, levels, torch.ones_like(levels, dtype=images.dtype))
    cdf = histogram.cumsum(dim=2)
    first = cdf.gather(2, levels.amin(dim=2, keepdim=True))
    remaining = cdf[..., -1:] - first
    lookup = ((cdf - first) / remaining.clamp(min=1.0)).clamp(0.0, 1.0)
    equalized = lookup.gather(2, levels).view_as(images)
    return torch.where(remaining.unsqueeze(-1) > 0, equalized, images)


def blend(images: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: ``degenerate + factor (images - degenerate)`` with a per-sample factor, clipped."""
    return (degenerate + _per_sample(factor) * (images - degenerate)).clamp(0.0, 1.0)


def smooth(images: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (3x3, centre weight 5, /13) used by its sharpness enhancement; borders unchanged."""
    kernel = torch.ones(3, 3, device=images.device, dtype=images.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(images.shape[1], 1, 3, 3)
    inner = F.conv2d(images, kernel, groups=images.shape[1])
    out = images.clone()
    out[..., 1:-1, 1:-1] = inner
    return out


def posterize(images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the ``bits`` (per sample, 1..8) most significant bits of 8-bit grey levels."""
    step = _per_sample(2.0 ** (8 - bits.to(images.dtype)))
    return torch.floor(torch.round(images * 255.0) / step) * step / 255.0


def solarize(images: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert the pixels at or above a per-sample ``threshold``."""
    return torch.where(images >= _per_sample(threshold), 1.0 - images, images)


def rand_augment_round(images: torch.Tensor, op: torch.Tensor, strength: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Apply to each image the operation ``RAND_AUGMENT_OPS[op]`` at ``strength`` in (0, 1] and direction ``sign`` (±1).

    Every operation is computed for the whole batch and each image keeps its own: cheap for the small images
    semi-supervised methods use, and free of per-sample loops.
    """
    index = {name: i for i, name in enumerate(RAND_AUGMENT_OPS)}
    is_op = {name: (op == i).to(images.dtype) for name, i in index.items()}
    signed = sign * strength
    angle = math.radians(MAX_ROTATION_DEGREES) * signed * is_op["rotate"]
    shear = MAX_SHEAR * signed[:, None] * torch.stack([is_op["shear_x"], is_op["shear_y"]], dim=1)
    translation = MAX_TRANSLATION * signed[:, None] * torch.stack([is_op["translate_x"], is_op["translate_y"]], dim=1)
    factor = (1.0 + MAX_ENHANCEMENT * signed).clamp(min=0.05)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    candidates = {
        "identity": images,
        "autocontrast": autocontrast(images),
        "equalize": equalize(images),
        "brightness": blend(images, torch.zeros_like(images), factor),
        "contrast": blend(images, mean.expand_as(images), factor),
        "sharpness": blend(images, smooth(images), factor),
        "posterize": posterize(images, 8 - torch.round(4.0 * strength)),
        "solarize": solarize(images, 1.0 - strength),
    }
    geometric = warp(images, affine_matrices(angle, shear, translation))
    out = geometric
    for name, candidate in candidates.items():
        out = torch.where(_per_sample(op == index[name]), candidate, out)
    return out


def cutout(images: torch.Tensor, size: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Paint a gray square of side ``size`` x the shorter image side at a random centre of each image (clipped)."""
    if size <= 0:
        return images
    batch, _, height, width = images.shape
    side = size * min(height, width)
    centre = _rand((batch, 2), images, generator) * torch.tensor([height, width], device=images.device, dtype=images.dtype)
    rows = torch.arange(height, device=images.device, dtype=images.dtype).view(1, height, 1) + 0.5
    columns = torch.arange(width, device=images.device, dtype=images.dtype).view(1, 1, width) + 0.5
    inside = ((rows - centre[:, 0, None, None]).abs() <= side / 2) & ((columns - centre[:, 1, None, None]).abs() <= side / 2)
    return images.masked_fill(inside[:, None], CUTOUT_FILL)


def strong_view(images: torch.Tensor, config: FixMatchViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """The weak view, then ``config.ops`` rounds of RandAugment, then a cutout."""
    out = weak_view(images, config, generator)
    batch = images.shape[0]
    for _ in range(config.ops):
        op = torch.randint(len(RAND_AUGMENT_OPS), (batch,), device=images.device, generator=generator)
        skipped = _rand((batch,), images, generator) >= config.op_prob
        op = op.masked_fill(skipped, RAND_AUGMENT_OPS.index("identity"))
        level = torch.randint(1, config.magnitude + 1, (batch,), device=images.device, generator=generator)
        sign = torch.where(_rand((batch,), images, generator) < 0.5, -1.0, 1.0).to(images.dtype)
        out = rand_augment_round(out, op, level.to(images.dtype) / 10.0, sign)
    return cutout(out, config.cutout, generator)


class FixMatchViews:
    """The weak and strong views of a batch under one ``FixMatchViewConfig``."""

    def __init__(self, config: FixMatchViewConfig) -> None:
        if not 1 <= config.magnitude <= 10:
            raise ValueError(f"RandAugment magnitude {config.magnitude} must lie in 1..10")
        self.config = config

    def weak(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flip, small rotation and translation."""
        return weak_view(images, self.config, generator)

    def strong(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Weak view + RandAugment + cutout."""
        return strong_view(images, self.config, generator)
