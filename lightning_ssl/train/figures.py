"""A method's preview drawn as one readable picture: labelled rows, samples as columns, three mid-slices per 3D sample.

Drawn with matplotlib's Agg canvas (no pyplot, no display); torchvision's grid helper would pull a CUDA torch here
and labels no rows.
"""

from __future__ import annotations

import textwrap

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lightning_ssl.methods.preview import Preview

TILE_INCHES = 1.7
DPI = 100
VOLUME_VIEWS = ("axis 0", "axis 1", "axis 2")


def _samples(preview: Preview, max_samples: int) -> int:
    return min(max_samples, *(len(row) for row in preview.rows.values()))


def _is_volume(preview: Preview) -> bool:
    return next(iter(preview.rows.values())).dim() == 5


def _displayable(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) when C is 3, else the first channel (H, W)."""
    image = image.detach().float().cpu().clamp(0, 1)
    return image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy()


def _tiles(sample: torch.Tensor) -> list[np.ndarray]:
    """One tile of a 2D sample (C, H, W); three of a 3D one (C, X, Y, Z): the middle slice across each spatial axis."""
    if sample.dim() == 3:
        return [_displayable(sample)]
    return [_displayable(sample.select(axis + 1, sample.shape[axis + 1] // 2)) for axis in range(3)]


def _column_titles(preview: Preview, samples: int) -> list[str]:
    titles = []
    for k in range(samples):
        name = textwrap.fill(preview.labels[k], 24) if k < len(preview.labels) else f"sample {k + 1}"
        titles += [f"{name}\n{view}" for view in VOLUME_VIEWS] if _is_volume(preview) else [name]
    return titles


def render_preview(preview: Preview, max_samples: int = 4) -> np.ndarray:
    """The preview as an RGB uint8 picture (H, W, 3): grey levels 0..1 as 0..255, >= 128 px per tile."""
    samples = _samples(preview, max_samples)
    titles = _column_titles(preview, samples)
    figure = Figure(figsize=(1.2 + TILE_INCHES * len(titles), 0.8 + (TILE_INCHES + 0.3) * len(preview.rows)), dpi=DPI)
    figure.set_layout_engine("constrained")
    axes = figure.subplots(len(preview.rows), len(titles), squeeze=False)
    for r, (name, row) in enumerate(preview.rows.items()):
        tiles = [tile for sample in row[:samples] for tile in _tiles(sample)]
        for c, tile in enumerate(tiles):
            ax = axes[r, c]
            ax.imshow(tile, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
        axes[r, 0].set_ylabel(textwrap.fill(name, 14), fontsize=11)
    figure.suptitle(preview.title.replace("_", " "), fontsize=12)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def describe_preview(preview: Preview, max_samples: int = 4) -> str:
    """One line naming the rows top to bottom and what the columns are."""
    samples = _samples(preview, max_samples)
    text = f"{preview.title}: rows from top: {', '.join(preview.rows)}; columns: {samples} validation samples"
    if _is_volume(preview):
        text += ", each as its middle slices across spatial axes 0, 1 and 2"
    if any(row.shape[1] not in (1, 3) for row in preview.rows.values()):
        text += "; rows of two or more than three channels show their first channel (three are shown as RGB)"
    if preview.labels:
        text += "; " + "; ".join(f"sample {k + 1}: {label}" for k, label in enumerate(preview.labels[:samples]))
    return text
