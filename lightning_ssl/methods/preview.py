"""What a method shows of a validation batch: named rows of images, one sample per column (the train layer draws it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Preview:
    """Rows of images to show side by side, top to bottom in insertion order.

    ``title``: a short name (letters, digits, underscores), also the logged tag ``val/<title>``. ``rows``: name ->
    tensor (N, C, *spatial) in [0, 1] for the same N samples; one channel is shown in grey, three as RGB, more as
    their first channel. ``labels``: optional text per sample (column), e.g. its true and predicted class.
    """

    title: str
    rows: dict[str, torch.Tensor]
    labels: list[str] = field(default_factory=list)


def label_map(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Class indices (N, 1, *spatial) as grey levels in [0, 1]: 0 black, the last class white."""
    return labels.float() / max(classes - 1, 1)
