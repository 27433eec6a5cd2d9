"""Context restoration corruption (Chen et al., MedIA 2019): swap pairs of disjoint patches, batched on the device.

Each image gets ``T`` sequential swaps; each swap exchanges the contents of two equal-sized patches at random
positions that never overlap (they may touch), so intensities are only permuted and spatial context is broken.
We write our own because no library does non-overlapping batched swaps on the device: TorchIO's ``RandomSwap``
runs per sample on the CPU and lets the two patches partially overlap, which the paper does not.
Images are ``(B, C, *spatial)`` with 2 or 3 spatial axes; all channels of a sample get the same swaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class ContextSwapConfig:
    """Number of swaps ``T`` per image and the patch size (``None``: image size // 8 per axis, at least 1)."""

    swaps: int = 10
    patch_size: list[int] | None = None


def default_patch_size(spatial: Sequence[int]) -> list[int]:
    """The default patch size for an image of size ``spatial``: size // 8 along each axis, at least 1."""
    return [max(1, size // 8) for size in spatial]


def _check_patch_size(spatial: Sequence[int], patch_size: Sequence[int]) -> None:
    """Raise ValueError unless an image of size ``spatial`` holds two disjoint patches of size ``patch_size``."""
    spatial, patch_size = list(spatial), list(patch_size)
    if len(patch_size) != len(spatial):
        raise ValueError(f"patch_size {patch_size} has {len(patch_size)} values but the image {spatial} has {len(spatial)} axes")
    if min(patch_size) < 1:
        raise ValueError(f"patch_size {patch_size} must be at least 1 along every axis")
    if any(patch > size for patch, size in zip(patch_size, spatial)):
        raise ValueError(f"patch_size {patch_size} is larger than the image size {spatial}; lower patch_size")
    if all(2 * patch > size for patch, size in zip(patch_size, spatial)):
        raise ValueError(
            f"image size {spatial} cannot hold two non-overlapping patches of size {patch_size}: "
            "lower patch_size so that 2 * patch <= size along at least one axis"
        )


def _scaled(draw: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Map draws uniform in [0, 1) to integers uniform in [0, count) (0 where count is 0)."""
    return torch.minimum((draw * count).long(), (count - 1).clamp(min=0))


def _uniform_outside(low: torch.Tensor, high: torch.Tensor, grid: torch.Tensor, generator) -> torch.Tensor:
    """Points uniform on the grid [0, grid) minus the box [low, high] (inclusive, may be empty); all tensors (B, D).

    The complement of the box is split into disjoint regions: region ``d`` holds the points inside the box along
    the axes before ``d`` and outside it along ``d``. A region is drawn in proportion to its size, then a point in it.
    """
    inside = (high - low + 1).clamp(min=0)
    outside = grid - inside
    dims = grid.shape[1]
    sizes = torch.stack([inside[:, :d].prod(1) * outside[:, d] * grid[:, d + 1 :].prod(1) for d in range(dims)], dim=1)
    cumulative = sizes.cumsum(1)
    pick = _scaled(torch.rand(grid.shape[0], dtype=torch.float64, device=grid.device, generator=generator), cumulative[:, -1])
    region = (pick[:, None] >= cumulative).sum(1, keepdim=True)
    draw = torch.rand(grid.shape, dtype=torch.float64, device=grid.device, generator=generator)
    beside = _scaled(draw, outside)
    beside = torch.where(beside < low, beside, beside + inside)
    axes = torch.arange(dims, device=grid.device)
    return torch.where(axes < region, low + _scaled(draw, inside), torch.where(axes == region, beside, _scaled(draw, grid)))


def swap_boxes(
    batch_size: int, spatial: Sequence[int], patch_size: Sequence[int], device, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corners (B, D) of the first and second patch of one swap per sample; the two patches never overlap.

    The first corner is uniform among the positions that leave room for a disjoint second patch (all positions
    unless the image is tight), the second is uniform among the positions disjoint from the first. The draws are
    a fixed sequence from ``generator``, so re-seeding it reproduces the corners ``context_swap`` used.
    """
    _check_patch_size(spatial, patch_size)
    patch = torch.tensor(list(patch_size), device=device).expand(batch_size, -1)
    grid = torch.tensor(list(spatial), device=device) - patch + 1
    last = grid - 1
    # A first corner has no disjoint partner iff along every axis it is within patch - 1 of both ends.
    first = _uniform_outside((last - patch + 1).clamp(min=0), torch.minimum(last, patch - 1), grid, generator)
    second = _uniform_outside((first - patch + 1).clamp(min=0), torch.minimum(last, first + patch - 1), grid, generator)
    return first, second


def context_swap(images: torch.Tensor, config: ContextSwapConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """The images after ``config.swaps`` sequential swaps of disjoint patch pairs (a new tensor; input unchanged).

    Each swap draws its corners with one ``swap_boxes`` call and nothing else from ``generator``.
    """
    if images.dim() not in (4, 5):
        raise ValueError(f"images must be (B, C, *spatial) with 2 or 3 spatial axes, got shape {tuple(images.shape)}")
    if config.swaps < 0:
        raise ValueError(f"swaps must be >= 0, got {config.swaps}")
    batch, channels, *spatial = images.shape
    patch_size = default_patch_size(spatial) if config.patch_size is None else list(config.patch_size)
    _check_patch_size(spatial, patch_size)
    strides = [math.prod(spatial[axis + 1 :]) for axis in range(len(spatial))]
    offsets = torch.zeros(1, dtype=torch.long, device=images.device)
    for length, stride in zip(patch_size, strides):
        offsets = (offsets[:, None] + torch.arange(length, device=images.device) * stride).flatten()
    stride_tensor = torch.tensor(strides, device=images.device)
    flat = images.flatten(2).clone()
    for _ in range(config.swaps):
        first, second = swap_boxes(batch, spatial, patch_size, images.device, generator)
        index_a, index_b = (
            ((corner * stride_tensor).sum(1, keepdim=True) + offsets).unsqueeze(1).expand(-1, channels, -1)
            for corner in (first, second)
        )
        values_a = flat.gather(2, index_a)
        flat.scatter_(2, index_a, flat.gather(2, index_b))
        flat.scatter_(2, index_b, values_a)
    return flat.view(images.shape)


class ContextSwap:
    """Callable context restoration corruption with a fixed config: ``ContextSwap(config)(images, generator)``."""

    def __init__(self, config: ContextSwapConfig | None = None) -> None:
        self.config = config or ContextSwapConfig()

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The corrupted images (see ``context_swap``)."""
        return context_swap(images, self.config, generator)
