"""DataModules, registered by the name used in configs and on the command line (``data=NAME``)."""

from __future__ import annotations

from lightning_ssl.data.base import BaseDataModule, DataInfo
from lightning_ssl.data.brats import BraTSDataModule
from lightning_ssl.data.chex import CheXDataModule
from lightning_ssl.data.ct_folder import CTFolderDataModule
from lightning_ssl.data.image_folder import ImageFolderDataModule
from lightning_ssl.data.jsrt import JSRTDataModule
from lightning_ssl.data.luna16 import Luna16DataModule
from lightning_ssl.data.medmnist import MedMNISTDataModule
from lightning_ssl.data.multitask import MultiTaskDataModule
from lightning_ssl.data.phantom import PhantomCTDataModule
from lightning_ssl.data.phantom_brain import PhantomBrainMRIDataModule
from lightning_ssl.data.phantom_xray import PhantomXRayDataModule
from lightning_ssl.data.ultrasound import BUSIDataModule, FetalPlanesDataModule

DATASETS: dict[str, type[BaseDataModule]] = {
    "phantom_ct": PhantomCTDataModule,
    "phantom_brain_mri": PhantomBrainMRIDataModule,
    "phantom_xray": PhantomXRayDataModule,
    "brats": BraTSDataModule,
    "ct_folder": CTFolderDataModule,
    "medmnist": MedMNISTDataModule,
    "pneumoniamnist": MedMNISTDataModule,
    "chex": CheXDataModule,
    "fetal_planes": FetalPlanesDataModule,
    "busi": BUSIDataModule,
    "image_folder": ImageFolderDataModule,
    "luna16": Luna16DataModule,
    "jsrt": JSRTDataModule,
    "multitask": MultiTaskDataModule,
}

__all__ = [
    "DATASETS",
    "BUSIDataModule",
    "BaseDataModule",
    "BraTSDataModule",
    "CTFolderDataModule",
    "CheXDataModule",
    "DataInfo",
    "FetalPlanesDataModule",
    "ImageFolderDataModule",
    "JSRTDataModule",
    "Luna16DataModule",
    "MedMNISTDataModule",
    "MultiTaskDataModule",
    "PhantomBrainMRIDataModule",
    "PhantomCTDataModule",
    "PhantomXRayDataModule",
]
