"""What BraTS labels mean, for every part that reads or scores them (datasets, phantoms, metrics, methods): the
channel order, the canonical label map, the label conventions of the challenge's editions and the scored regions.

Canonical labels: 0 background, 1 necrotic / non-enhancing tumour core, 2 edema, 3 enhancing tumour. BraTS 2017-2021
store enhancing tumour as 4, BraTS 2023 and later as 3. Regions: whole tumour (1, 2, 3), tumour core (1, 3),
enhancing tumour (3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightning_ssl.errors import DataError

MODALITIES = ("t1", "t1ce", "t2", "flair")
"""The channel order of every BraTS image, whatever the edition names its files."""
BACKGROUND, NECROTIC_CORE, EDEMA, ENHANCING = range(4)
LABEL_NAMES = ("background", "necrotic / non-enhancing tumour core", "edema", "enhancing tumour")
REGION_NAMES = ("whole tumour", "tumour core", "enhancing tumour")
CONVENTIONS: dict[str, dict[int, int]] = {
    "2017": {0: BACKGROUND, 1: NECROTIC_CORE, 2: EDEMA, 4: ENHANCING},
    "2023": {0: BACKGROUND, 1: NECROTIC_CORE, 2: EDEMA, 3: ENHANCING},
}
"""Label values of each BraTS convention -> canonical label (``LABEL_NAMES``)."""


def label_values(seg: np.ndarray) -> list[float]:
    """The distinct values of a label map (fast for small non-negative integers)."""
    as_int = seg.astype(np.int64)
    if as_int.min() >= 0 and as_int.max() < 256 and np.array_equal(as_int, seg):
        return np.flatnonzero(np.bincount(as_int.ravel(), minlength=256)).tolist()
    return np.unique(seg).tolist()


def check_label_values(seg: np.ndarray, convention: str, path: str | Path) -> None:
    """DataError naming the file when a label map holds values outside the BraTS ``convention``."""
    mapping = CONVENTIONS[convention]
    values = label_values(seg)
    if any(v not in mapping for v in values):
        raise DataError(
            f"{path} holds label values {values}, not all in the BraTS {convention} convention {sorted(mapping)}: "
            f"check data.label_convention (auto, 2017 or 2023) or the file"
        )


def canonical_labels(seg: np.ndarray, convention: str, path: str | Path) -> np.ndarray:
    """A BraTS label map in ``convention`` as the canonical uint8 map; DataError naming the file for other values."""
    check_label_values(seg, convention, path)
    lut = np.zeros(256, dtype=np.uint8)
    for source, target in CONVENTIONS[convention].items():
        lut[source] = target
    return lut[seg.astype(np.int64)]


def brats_regions(mask: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
    """The BraTS regions (whole tumour 1|2|3, tumour core 1|3, enhancing 3) of canonical label maps, as uint8.

    ``mask`` is (1, *spatial) -> (3, *spatial), or (B, 1, *spatial) -> (B, 3, *spatial). The channel axis is
    guessed (axis 1 of a 5D tensor or of a 4D one whose axis 1 has size 1, else axis 0) unless ``channel_dim`` is given.
    """
    mask = torch.as_tensor(mask)
    if channel_dim is None:
        channel_dim = 1 if mask.dim() == 5 or (mask.dim() == 4 and mask.shape[1] == 1) else 0
    if mask.shape[channel_dim] != 1:
        raise ValueError(f"label map of shape {tuple(mask.shape)} has no size-1 channel axis at {channel_dim}")
    whole = (mask >= NECROTIC_CORE) & (mask <= ENHANCING)
    core = (mask == NECROTIC_CORE) | (mask == ENHANCING)
    return torch.cat([whole, core, mask == ENHANCING], dim=channel_dim).to(torch.uint8)
