"""Two datasets, two tasks, one network: a classification dataset and a segmentation dataset trained together (MultiMix).

Design
- ``data.classification`` and ``data.segmentation`` are each the whole config of a registered dataset, chosen by
  its ``name`` and checked against that dataset's schema like a top-level data config (unknown keys are errors):
  ``data.classification.name=pneumoniamnist data.classification.root=../shared/data/pneumoniamnist``. Each task is
  that dataset's own DataModule, with its own train/val/test split.
- Each task's ``spatial_dims``, ``patch_size``, ``batch_size`` (per stream, as MultiMix), ``num_workers``, ``seed``
  and ``split_seed`` point at the top-level values (``inherited``, ``${..patch_size}``), so
  ``data.patch_size=[128,128]`` resizes both; a task may still override its own. Both tasks must give the same
  spatial dims, patch size and channels (one network sees both), else a ConfigError says which differ.
- Label budgets are per task: ``data.classification.label_budget`` keeps that many class labels (stratified by class,
  nested across budgets for one seed), ``data.segmentation.label_budget`` that many masks, stratified by class when
  the segmentation set has class labels, else in a seeded random order (nested too). The rest of each training
  split is that task's unlabeled pool. The top-level ``data.label_budget`` and ``data.root`` are unused: set per task.
- Training batches (``semi_supervised_dataloader``, also ``train_dataloader``) are a Lightning ``CombinedLoader`` in
  ``max_size_cycle`` mode of ``{"classification": {"labeled": {image, label}, "unlabeled": {image}},
  "segmentation": {"labeled": {image, mask}, "unlabeled": {image}}}``: per task, the ``labeled``/``unlabeled`` batch
  every semi-supervised method reads; an empty part (e.g. the pool under a budget of "all") is absent.
- Validation and test loaders are a list: index 0 classification ``{image, label}``, 1 segmentation ``{image,
  mask}`` (Lightning's ``dataloader_idx``). A task without a test split is tested on its validation split, with a
  warning.

Tiny segmentation sets: the 4 real X-rays of ``xray_lung_seg`` split by ``image_folder`` with ``val_fraction=0.25
test_fraction=0.25`` into 2 train / 1 val / 1 test images (``experiments/data/xray_multitask_real.yaml``), so the
test image is never trained on; segmentation metrics on one image are anecdotes, not measurements. With fewer than
3 images ``image_folder`` validates on its training images (it warns) and the test falls back to them too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError
from pytorch_lightning.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset

from lightning_ssl.data.base import BaseDataModule, DataInfo
from lightning_ssl.data.budget import labeled_subset
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.sampling import Subset
from lightning_ssl.errors import one_line
from lightning_ssl.registry import DATASETS
from lightning_ssl.schema import ConfigError, DataConfig

log = logging.getLogger(__name__)

TASKS = ("classification", "segmentation")
TARGET = {"classification": "label", "segmentation": "mask"}
SHARED_INPUT = ("spatial_dims", "in_channels", "patch_size")


@dataclass
class MultiTaskConfig(DataConfig):
    """A classification and a segmentation dataset, each a whole data config chosen by its ``name`` (see the module
    docstring); ``batch_size`` is per stream (labeled/unlabeled, classification/segmentation)."""

    nested_data: ClassVar[dict[str, dict[str, Any]]] = {
        "classification": {"name": "phantom_xray", "label_budget": 100},
        "segmentation": {"name": "phantom_xray", "label_budget": 10},
    }
    inherited: ClassVar[tuple[str, ...]] = ("spatial_dims", "patch_size", "batch_size", "num_workers", "seed", "split_seed")

    name: str = "multitask"
    spatial_dims: int = 2
    patch_size: list[int] = field(default_factory=lambda: [64, 64])
    batch_size: int = 10
    classification: Any = field(default_factory=lambda: {"name": "phantom_xray"})
    segmentation: Any = field(default_factory=lambda: {"name": "phantom_xray"})


def task_datamodule(task: str, node: Any) -> BaseDataModule:
    """The DataModule of one task from its nested config: its dataset's defaults, then the given values."""
    from lightning_ssl.data import DATASETS  # the registry imports this module

    given = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    name = given.get("name")
    if name not in DATASETS or name == MultiTaskConfig.name:
        known = ", ".join(sorted(n for n in DATASETS if n != MultiTaskConfig.name))
        raise ConfigError(f"data.{task}.name={name!r} is not a dataset; known: {known}")
    try:
        config = OmegaConf.merge(OmegaConf.structured(DATASETS[name].Config(name=name)), given)
    except (ConfigKeyError, ValidationError) as error:
        raise ConfigError(f"data.{task} ({name}): {one_line(error)}") from None
    return DATASETS[name](config)


class TaskItems(Dataset):
    """Items of a dataset reduced to ``keys``; a missing key is a DataError naming the task and its dataset."""

    def __init__(self, dataset: Dataset, keys: Sequence[str], task: str, source: str) -> None:
        self.dataset = dataset
        self.keys = tuple(keys)
        self.where = f"data.{task} ({source})"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.dataset[index]
        missing = [key for key in self.keys if key not in item]
        if missing:
            hint = " (image_folder: set mask_suffix)" if "mask" in missing else ""
            raise DataError(f"{self.where} items have no {missing}, needed by its task; they hold {sorted(item)}{hint}")
        return {key: item[key] for key in self.keys}


def check_first_item(items: TaskItems) -> None:
    """Read the first item, so a dataset that lacks its task's target fails at setup, naming the task."""
    items[0]


@DATASETS.register("multitask")
class MultiTaskDataModule(BaseDataModule):
    """A classification DataModule and a segmentation DataModule side by side (see the module docstring)."""

    Config = MultiTaskConfig

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        for key in ("label_budget", "root"):
            if config.get(key) is not None:
                raise ConfigError(
                    f"data.{key} is per task for data=multitask: set data.classification.{key} / data.segmentation.{key}"
                )
        self.tasks = {task: task_datamodule(task, config[task]) for task in TASKS}
        self.train_parts: dict[str, dict[str, Dataset]] = {}

    @property
    def info(self) -> DataInfo:
        """Input of both tasks (they must agree) and the classes of the classification task."""
        cls, seg = (self.tasks[task].info for task in TASKS)
        differing = [key for key in SHARED_INPUT if getattr(cls, key) != getattr(seg, key)]
        if differing:
            values = ", ".join(f"{key} {getattr(cls, key)} vs {getattr(seg, key)}" for key in differing)
            raise ConfigError(f"data.classification and data.segmentation must give the network the same input: {values}")
        if not cls.num_classes:
            raise ConfigError(f"data.classification ({self.tasks['classification'].config.name}) has no class labels")

        def both(attribute: str) -> str:
            first, second = getattr(cls, attribute), getattr(seg, attribute)
            return first if first == second else f"classification: {first}; segmentation: {second}"

        return DataInfo(
            spatial_dims=cls.spatial_dims,
            in_channels=cls.in_channels,
            channel_names=list(cls.channel_names),
            patch_size=list(cls.patch_size),
            intensity=both("intensity"),
            modality=both("modality"),
            axes=cls.axes,
            num_classes=cls.num_classes,
            class_names=list(cls.class_names),
        )

    def prepare_data(self) -> None:
        """Download what each task's dataset downloads."""
        for datamodule in self.tasks.values():
            datamodule.prepare_data()

    def task_budget(self, task: str) -> tuple[np.ndarray, np.ndarray]:
        """(labeled, unlabeled) training indices of a task under its ``label_budget``."""
        datamodule = self.tasks[task]
        labels = datamodule.train_labels()
        if labels is None and task == "segmentation":
            labels = np.zeros(len(datamodule.train_dataset), dtype=np.int64)
        if labels is None:
            raise DataError(f"data.classification ({datamodule.config.name}) has no class labels to train on")
        try:
            return labeled_subset(labels, datamodule.config.label_budget, datamodule.config.seed)
        except DataError as error:
            raise DataError(f"data.{task}: {str(error).replace('data.label_budget', f'data.{task}.label_budget')}") from None

    def setup(self, stage: str | None = None) -> None:
        """Set both tasks up and split each training set into its labeled budget and unlabeled pool."""
        if self.train_parts:
            return
        for task, datamodule in self.tasks.items():
            datamodule.setup(stage)
            source = datamodule.config.name
            labeled, unlabeled = self.task_budget(task)
            train = datamodule.train_dataset
            parts = {
                "labeled": TaskItems(Subset(train, labeled.tolist()), ("image", TARGET[task]), task, source),
                "unlabeled": TaskItems(Subset(train, unlabeled.tolist()), ("image",), task, source),
            }
            self.train_parts[task] = {kind: part for kind, part in parts.items() if len(part)}
            for part in self.train_parts[task].values():
                check_first_item(part)

    def part_dataloader(self, task: str, kind: str) -> DataLoader:
        """Shuffled batches of one task's ``labeled`` or ``unlabeled`` training part, at its task's batch size."""
        self.setup("fit")
        return self.tasks[task]._loader(self.train_parts[task][kind], shuffle=True)

    def semi_supervised_dataloader(self) -> CombinedLoader:
        """Training batches of every non-empty part, cycled to the longest (see the module docstring)."""
        self.setup("fit")
        loaders = {task: {kind: self.part_dataloader(task, kind) for kind in parts} for task, parts in self.train_parts.items()}
        return CombinedLoader({task: parts for task, parts in loaders.items() if parts}, mode="max_size_cycle")

    def train_dataloader(self) -> CombinedLoader:
        """The semi-supervised batches: MultiMix trains on nothing else."""
        return self.semi_supervised_dataloader()

    def _evaluation_loader(self, task: str, split: str) -> DataLoader:
        datamodule = self.tasks[task]
        dataset = getattr(datamodule, f"{split}_dataset")
        if dataset is None and split == "test":
            name = datamodule.config.name
            log.warning("data.%s (%s) has no test split: its test metrics are on its validation split", task, name)
            dataset = datamodule.val_dataset
        if dataset is None:
            raise DataError(f"data.{task} ({datamodule.config.name}) has no {split} split: give it a val_fraction > 0")
        items = TaskItems(dataset, ("image", TARGET[task]), task, datamodule.config.name)
        return datamodule._loader(items, shuffle=False)

    def val_dataloader(self) -> list[DataLoader]:
        """[classification, segmentation] validation loaders (``dataloader_idx`` 0 and 1)."""
        self.setup("fit")
        return [self._evaluation_loader(task, "val") for task in TASKS]

    def test_dataloader(self) -> list[DataLoader]:
        """[classification, segmentation] test loaders; a task without a test split uses its validation split."""
        self.setup("test")
        return [self._evaluation_loader(task, "test") for task in TASKS]
