"""DataModules, each registered by the name used in configs and on the command line (``data=NAME``) where it is defined."""

from __future__ import annotations

from lightning_ssl.data import (
    brats,
    chex,
    ct_folder,
    decathlon,
    image_folder,
    jsrt,
    luna16,
    medmnist,
    multitask,
    phantom_brain,
    phantom_ct,
    phantom_xray,
    ultrasound,
)
from lightning_ssl.data.base import BaseDataModule
from lightning_ssl.registry import DATASETS

__all__ = [
    "DATASETS",
    "BaseDataModule",
    "brats",
    "chex",
    "ct_folder",
    "decathlon",
    "image_folder",
    "jsrt",
    "luna16",
    "medmnist",
    "multitask",
    "phantom_ct",
    "phantom_brain",
    "phantom_xray",
    "ultrasound",
]
