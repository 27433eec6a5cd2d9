"""The contrastive-predictive-coding branch of ssCPCseg (Iwasawa et al. 2020): patch grid, patch vectors, predictor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from monai.networks.blocks import UnetResBlock
from monai.networks.layers import Conv
from torch import nn

from lightning_ssl.models.heads import global_pool


def grid_shape(spatial: tuple[int, ...], size: int, stride: int) -> tuple[int, ...]:
    """How many patches of ``size`` at ``stride`` fit along each axis of an image of shape ``spatial``."""
    if any(n < size for n in spatial):
        raise ValueError(f"an image of {list(spatial)} voxels is smaller than the CPC patch size {size}: lower method.cpc_patch_size")
    return tuple((n - size) // stride + 1 for n in spatial)


def patch_grid(images: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The overlapping patches of every image, (B * G, C, *[size]), in row-major grid order, and the grid shape.

    Patch (b, i, j[, k]) is ``images[b, :, i*stride : i*stride+size, j*stride : ...]``; the patches of image b
    are rows ``b*G .. (b+1)*G - 1``. Cut with ``unfold`` (a strided view), copied once by the final reshape.
    """
    spatial_dims = images.dim() - 2
    grid = grid_shape(tuple(images.shape[2:]), size, stride)
    windows = images
    for axis in range(2, 2 + spatial_dims):
        windows = windows.unfold(axis, size, stride)
    # (B, C, *grid, *patch) -> (B, *grid, C, *patch)
    order = (0, *range(2, 2 + spatial_dims), 1, *range(2 + spatial_dims, 2 + 2 * spatial_dims))
    patches = windows.permute(order).reshape(-1, images.shape[1], *([size] * spatial_dims))
    return patches, grid


@dataclass
class CPCOutput:
    """What InfoNCE scores: ``predictions`` (B, P, D) of ``vectors[:, targets]``; ``vectors`` (B, G, D), ``targets`` (P,)."""

    predictions: torch.Tensor
    vectors: torch.Tensor
    targets: torch.Tensor
    grid: tuple[int, ...]


class CPCPredictor(nn.Module):
    """Residual blocks over the grid of patch vectors, then a 1x1 conv: the vectors of one half -> those of the other."""

    def __init__(self, spatial_dims: int, dim: int, blocks: int = 8) -> None:
        super().__init__()
        # Group norm as the authors' ResBlocks: it normalises a grid of any size, even a single cell.
        norm = ("group", {"num_groups": math.gcd(8, dim)})
        self.blocks = nn.Sequential(
            *(UnetResBlock(spatial_dims, dim, dim, kernel_size=3, stride=1, norm_name=norm, act_name="relu") for _ in range(blocks))
        )
        self.out = Conv[Conv.CONV, spatial_dims](dim, dim, kernel_size=1)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """Predicted vectors (B, D, *half_grid) from the context vectors (B, D, *half_grid)."""
        return self.out(self.blocks(context))


class CPCBranch(nn.Module):
    """Encode every patch of a grid with the (shared) encoder and predict the lower half of the grid from the upper half.

    The grid is split along the first spatial axis: its first ``n // 2`` rows are the context, its last
    ``n // 2`` rows the targets (the middle row of an odd grid is neither); the prediction at context
    row r aims at row ``r + n - n // 2``. Vectors are the average-pooled bottleneck of each patch,
    linearly projected to ``dim`` unless ``dim`` is the bottleneck's ``width``.

    The encoder is passed to ``forward``, not held, so that the segmentation network alone owns it.
    """

    def __init__(
        self,
        spatial_dims: int,
        width: int,
        patch_size: int = 32,
        stride: int = 16,
        dim: int | None = None,
        predictor_blocks: int = 8,
    ) -> None:
        super().__init__()
        self.dim = dim or width
        self.patch_size = patch_size
        self.stride = stride
        self.projection = nn.Identity() if self.dim == width else nn.Linear(width, self.dim)
        self.predictor = CPCPredictor(spatial_dims, self.dim, predictor_blocks)

    def patch_vectors(self, images: torch.Tensor, encoder: nn.Module) -> tuple[torch.Tensor, tuple[int, ...]]:
        """One vector per patch, (B, D, *grid), and the grid shape."""
        patches, grid = patch_grid(images, self.patch_size, self.stride)
        if grid[0] < 2:
            raise ValueError(
                f"the CPC grid {list(grid)} has fewer than 2 rows along the first axis: the image "
                f"{list(images.shape[2:])} needs at least patch_size + stride = {self.patch_size + self.stride} voxels there"
            )
        vectors = self.projection(global_pool(encoder(patches)[-1]))
        return vectors.view(images.shape[0], *grid, self.dim).movedim(-1, 1), grid

    def forward(self, images: torch.Tensor, encoder: nn.Module) -> CPCOutput:
        """Predictions of the lower half of each image's grid, with every patch vector and the predicted cells."""
        vectors, grid = self.patch_vectors(images, encoder)
        half = grid[0] // 2
        predictions = self.predictor(vectors[:, :, :half])
        cells = torch.arange(math.prod(grid), device=images.device).view(grid)
        return CPCOutput(
            predictions=predictions.flatten(2).transpose(1, 2),
            vectors=vectors.flatten(2).transpose(1, 2),
            targets=cells[grid[0] - half :].flatten(),
            grid=grid,
        )
