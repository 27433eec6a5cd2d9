"""DataModules, registered by the name used in configs and on the command line (``data=NAME``)."""

from __future__ import annotations

from lightning_ssl.data.base import BaseDataModule, DataInfo
from lightning_ssl.data.ct_folder import CTFolderDataModule
from lightning_ssl.data.medmnist import MedMNISTDataModule
from lightning_ssl.data.phantom import PhantomCTDataModule

DATASETS: dict[str, type[BaseDataModule]] = {
    "phantom_ct": PhantomCTDataModule,
    "ct_folder": CTFolderDataModule,
    "medmnist": MedMNISTDataModule,
    "pneumoniamnist": MedMNISTDataModule,
}

__all__ = ["DATASETS", "BaseDataModule", "DataInfo", "CTFolderDataModule", "MedMNISTDataModule", "PhantomCTDataModule"]
