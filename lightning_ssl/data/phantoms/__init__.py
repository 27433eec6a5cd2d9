"""Procedural imaging phantoms, the embedded default data that needs no download."""

from lightning_ssl.data.phantoms.brain_mri import BrainMRIPhantom, brain_mri_phantom
from lightning_ssl.data.phantoms.chest_ct import ChestCTPhantom, chest_ct_phantom
from lightning_ssl.data.phantoms.chest_xray import ChestXRayPhantom, chest_xray_phantom

__all__ = [
    "BrainMRIPhantom",
    "ChestCTPhantom",
    "ChestXRayPhantom",
    "brain_mri_phantom",
    "chest_ct_phantom",
    "chest_xray_phantom",
    "patient_numbers",
]


def patient_numbers(split_seed: int, count: int) -> range:
    """The numbers of the ``count`` phantom patients of a dataset: a block of its own for every ``split_seed``."""
    return range(split_seed * 10_000, split_seed * 10_000 + count)
