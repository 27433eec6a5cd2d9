"""Random views of SimCLR / BYOL for grayscale medical images, as batched tensor operations on the batch's device.

This is our own code because torchvision/kornia augmentations are 2D RGB-oriented (and torchvision from PyPI would
pull a CUDA torch here) and MONAI's random transforms run per sample on CPU in the data loader, whereas we need one
batched op for 2D and 3D on the device.

Images are float ``(B, C, *spatial)`` in [0, 1] with 2 or 3 spatial axes; every op returns values in [0, 1] with the
input's dtype and device. All channels of a sample share its geometric transform; intensity jitter is per channel.
Defaults follow Azizi et al. (2021) for medical images: random resized crop, flip and mild intensity jitter on;
Gaussian blur and SimCLR's strong colour jitter (both hurt there) off; multi-crop off (0 small views).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

HORIZONTAL_AXIS = {2: 1, 3: 0}
"""Spatial axis flipped by default: W of a 2D ``(H, W)`` image, X of a 3D ``(X, Y, Z)`` (RAS-like NIfTI) volume."""


@dataclass
class ViewConfig:
    """Which random view ops run and how strongly (see the module docstring for the defaults' rationale).

    The crop is disabled by ``crop_scale=[1, 1]`` and ``crop_ratio=[1, 1]``, the flip by ``flip_prob=0``, the
    intensity jitter by ``intensity_prob=0``. ``flip_axes`` are 0-based spatial axes; ``None`` means the horizontal
    (left-right) axis, ``HORIZONTAL_AXIS[spatial_dims]``. ``gamma`` should stay below 1 so the exponent is positive.
    """

    crop_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])
    crop_ratio: list[float] = field(default_factory=lambda: [0.75, 1.3333])
    flip_axes: list[int] | None = None
    flip_prob: float = 0.5
    intensity_prob: float = 0.8
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: float = 0.2
    noise_std: float = 0.0
    blur_prob: float = 0.0
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])
    color_jitter_prob: float = 0.0
    color_jitter_strength: float = 0.8
    small_crops: int = 0
    small_crop_scale: list[float] = field(default_factory=lambda: [0.05, 0.4])
    small_crop_size_fraction: float = 0.5


def _rand(size: tuple[int, ...], images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) float32 draws on the images' device."""
    return torch.rand(size, device=images.device, generator=generator)


def _per_sample(mask_or_values: torch.Tensor, ndim: int) -> torch.Tensor:
    """Append singleton axes up to ``ndim`` dimensions, so per-sample (or per-channel) values broadcast over images."""
    return mask_or_values.reshape(*mask_or_values.shape, *([1] * (ndim - mask_or_values.ndim)))


def _apply_with_prob(images: torch.Tensor, changed: torch.Tensor, prob: float, generator) -> torch.Tensor:
    """``changed`` for a random subset of samples (each with probability ``prob``), ``images`` for the rest."""
    apply = _rand((images.shape[0],), images, generator) < prob
    return torch.where(_per_sample(apply, images.ndim), changed, images)


def random_resized_crop(
    images: torch.Tensor,
    scale: Sequence[float],
    ratio: Sequence[float],
    out_size: Sequence[int],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop a random box per sample and resample it (bi/trilinear) to ``out_size``.

    The box covers a fraction in ``scale`` of the area (volume in 3D); its aspect ratio, size along spatial axis 1
    over axis 0 (and axis 2 over axis 0 in 3D), is log-uniform in ``ratio``. Sizes are relative to the input's shape
    and clipped to it.
    """
    batch, dims = images.shape[0], images.ndim - 2
    area = scale[0] + (scale[1] - scale[0]) * _rand((batch,), images, generator)
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    log_ratio = log_low + (log_high - log_low) * _rand((batch, dims - 1), images, generator)
    relative = torch.cat([torch.zeros_like(log_ratio[:, :1]), log_ratio], dim=1).exp()
    base = (area / relative.prod(dim=1)) ** (1.0 / dims)
    fraction = (base[:, None] * relative).clamp(max=1.0)
    center = (1.0 - fraction) * (2.0 * _rand((batch, dims), images, generator) - 1.0)
    # affine_grid's coordinates run from the last spatial axis to the first.
    theta = torch.cat([torch.diag_embed(fraction.flip(1)), center.flip(1)[:, :, None]], dim=2).to(images.dtype)
    grid = F.affine_grid(theta, [batch, images.shape[1], *out_size], align_corners=False)
    resampled = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return resampled.clamp(0.0, 1.0)


def random_flip(images: torch.Tensor, axes: Sequence[int], prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each sample along each of the spatial ``axes`` (0-based) independently with probability ``prob``."""
    dims = images.ndim - 2
    flips = _rand((images.shape[0], len(axes)), images, generator) < prob
    out = images
    for index, axis in enumerate(axes):
        out = torch.where(_per_sample(flips[:, index], images.ndim), out.flip(2 + axis % dims), out)
    return out


def intensity_jitter(images: torch.Tensor, config: ViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mild per-channel contrast, brightness, gamma (and optional noise), on each sample with ``intensity_prob``."""
    if config.intensity_prob <= 0:
        return images
    batch, channels = images.shape[:2]
    draws = _per_sample(2.0 * _rand((3, batch, channels), images, generator) - 1.0, images.ndim + 1).to(images.dtype)
    contrast, brightness, gamma = 1.0 + config.contrast * draws[0], config.brightness * draws[1], 1.0 + config.gamma * draws[2]
    mean = images.mean(dim=tuple(range(2, images.ndim)), keepdim=True)
    out = ((images - mean) * contrast + mean + brightness).clamp(0.0, 1.0) ** gamma
    if config.noise_std > 0:
        noise = torch.randn(images.shape, device=images.device, generator=generator, dtype=images.dtype)
        out = (out + config.noise_std * noise).clamp(0.0, 1.0)
    return _apply_with_prob(images, out, config.intensity_prob, generator)


def gaussian_blur(
    images: torch.Tensor, sigma_range: Sequence[float], prob: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma in ``sigma_range``, on each sample with probability ``prob``."""
    if prob <= 0:
        return images
    batch, channels, *spatial = images.shape
    dims, groups = len(spatial), batch * channels
    sigma = sigma_range[0] + (sigma_range[1] - sigma_range[0]) * _rand((batch,), images, generator)
    radius = max(1, math.ceil(3.0 * sigma_range[1]))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=sigma.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0).to(images.dtype)
    conv = F.conv2d if dims == 2 else F.conv3d
    out = images.reshape(1, groups, *spatial)
    for axis in range(dims):
        shape, pad = [1] * dims, [0] * (2 * dims)
        shape[axis] = 2 * radius + 1
        pad[2 * (dims - 1 - axis)] = pad[2 * (dims - 1 - axis) + 1] = radius
        out = conv(F.pad(out, pad, mode="replicate"), kernel.view(groups, 1, *shape), groups=groups)
    return _apply_with_prob(images, out.reshape(images.shape).clamp(0.0, 1.0), prob, generator)


def color_jitter(images: torch.Tensor, strength: float, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """SimCLR's strong colour jitter for grayscale, on each sample with probability ``prob``.

    Brightness (multiplicative), contrast (around the sample mean) and saturation (around the channel mean, a no-op
    for one channel) factors are drawn per sample in ``[1 - 0.8 s, 1 + 0.8 s]`` and applied in that fixed order; hue
    has no grayscale counterpart.
    """
    if prob <= 0:
        return images
    amount = 0.8 * strength
    factors = (1.0 + amount * (2.0 * _rand((3, images.shape[0]), images, generator) - 1.0)).clamp(min=0.0)
    brightness, contrast, saturation = _per_sample(factors, images.ndim + 1).to(images.dtype)
    out = (images * brightness).clamp(0.0, 1.0)
    mean = out.mean(dim=tuple(range(1, images.ndim)), keepdim=True)
    out = ((out - mean) * contrast + mean).clamp(0.0, 1.0)
    channel_mean = out.mean(dim=1, keepdim=True)
    out = ((out - channel_mean) * saturation + channel_mean).clamp(0.0, 1.0)
    return _apply_with_prob(images, out, prob, generator)


class ViewGenerator:
    """Makes the views of a batch: 2 large views (+ ``small_crops`` small ones)."""

    def __init__(self, config: ViewConfig, spatial_dims: int) -> None:
        if spatial_dims not in HORIZONTAL_AXIS:
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.config = config
        self.spatial_dims = spatial_dims
        self.flip_axes = [HORIZONTAL_AXIS[spatial_dims]] if config.flip_axes is None else list(config.flip_axes)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """``[large1, large2, small1, ...]``: large views keep the input's size, small ones a fraction of it per axis."""
        if images.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected (B, C) + {self.spatial_dims} spatial axes, got shape {tuple(images.shape)}")
        config = self.config
        size = list(images.shape[2:])
        small_size = [max(1, round(length * config.small_crop_size_fraction)) for length in size]
        views = [self._view(images, config.crop_scale, size, generator) for _ in range(2)]
        views += [self._view(images, config.small_crop_scale, small_size, generator) for _ in range(config.small_crops)]
        return views

    def _view(self, images: torch.Tensor, scale: Sequence[float], size: Sequence[int], generator) -> torch.Tensor:
        """One random view of every sample."""
        config = self.config
        out = random_resized_crop(images, scale, config.crop_ratio, size, generator)
        out = random_flip(out, self.flip_axes, config.flip_prob, generator)
        out = intensity_jitter(out, config, generator)
        out = color_jitter(out, config.color_jitter_strength, config.color_jitter_prob, generator)
        return gaussian_blur(out, config.blur_sigma, config.blur_prob, generator)
