"""`check-data`: read every item of a DataModule before training and summarise what was found."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lightning_ssl.data.base import BaseDataModule
from lightning_ssl.data.errors import DataError
from lightning_ssl.data.verify import problem_lines
from lightning_ssl.errors import one_line

SPLITS = ("train", "val", "test")


@dataclass
class SplitSummary:
    """What one split holds."""

    items: int = 0
    patients: int | None = None
    classes: Counter = field(default_factory=Counter)
    shapes: Counter = field(default_factory=Counter)
    spacings: Counter = field(default_factory=Counter)
    intensity: tuple[float, float] | None = None
    mask_values: set[int] = field(default_factory=set)


@dataclass
class DataSummary:
    """Every split's summary and the problems met while reading."""

    name: str
    root: str | None
    splits: dict[str, SplitSummary] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cases: tuple[list[str], list[list[str]]] | None = None


def _as_list(value: Any) -> list:
    return value.tolist() if isinstance(value, (np.ndarray, torch.Tensor)) else list(value)


def item_source(dataset: Any, index: int) -> str | None:
    """The file (or case) item ``index`` is read from, when the dataset says (``item_source(index)``)."""
    source = getattr(dataset, "item_source", None)
    return None if source is None else str(source(index))


def _indices(indices: list[int]) -> str:
    """``3`` or ``items 0-31`` or ``items 2, 5, 9``: the item numbers of one problem."""
    if len(indices) == 1:
        return f"item {indices[0]}"
    if indices == list(range(indices[0], indices[-1] + 1)):
        return f"items {indices[0]}-{indices[-1]}"
    return "items " + ", ".join(map(str, indices))


def _problem_lines(name: str, found: dict[tuple[str | None, str], list[int]]) -> list[str]:
    """One line per problem and source: the items (patches of one volume share a line), the source, the message."""
    lines = []
    for (source, message), indices in found.items():
        named = "" if source is None or source in message else f" ({source})"
        lines.append(f"{name} {_indices(indices)}{named}: {message}")
    return lines


def _summarise_split(dataset: Any, name: str, problems: list[str]) -> SplitSummary:
    summary = SplitSummary(items=len(dataset))
    patients: set[str] = set()
    low, high = np.inf, -np.inf
    found: dict[tuple[str | None, str], list[int]] = {}
    for index in tqdm(range(len(dataset)), desc=f"checking {name}", leave=False):
        try:
            item = dataset[index]
        except (DataError, OSError, ValueError, RuntimeError) as error:
            found.setdefault((item_source(dataset, index), one_line(error)), []).append(index)
            continue
        image = torch.as_tensor(item["image"])
        summary.shapes[tuple(image.shape)] += 1
        if not torch.isfinite(image).all():
            found.setdefault((item_source(dataset, index), "NaN or infinite values"), []).append(index)
        else:
            low, high = min(low, float(image.min())), max(high, float(image.max()))
        if "label" in item and torch.as_tensor(item["label"]).dim() == 0:
            summary.classes[int(item["label"])] += 1
        if "mask" in item:
            summary.mask_values.update(int(v) for v in torch.unique(torch.as_tensor(item["mask"])))
        if "patient_id" in item:
            patients.add(str(item["patient_id"]))
        spacing = (item.get("meta") or {}).get("spacing")
        if spacing is not None:
            summary.spacings[tuple(round(float(s), 3) for s in _as_list(spacing))] += 1
    summary.patients = len(patients) if patients else None
    summary.intensity = (low, high) if np.isfinite(low) else None
    problems.extend(_problem_lines(name, found))
    return summary


def check_datamodule(datamodule: BaseDataModule) -> DataSummary:
    """Set the DataModule up, read every item of every split, and collect counts, shapes, ranges and problems; a
    DataModule with a ``case_table()`` (header, rows) adds one row per case."""
    config = datamodule.config
    summary = DataSummary(name=config.name, root=config.get("root"))
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
        summary.class_names = list(datamodule.info.class_names)
    except DataError as error:
        summary.problems.extend(problem_lines(error))
        return summary
    except FileNotFoundError as error:
        summary.problems.append(one_line(error))
        return summary
    for split in SPLITS:
        dataset = getattr(datamodule, f"{split}_dataset", None)
        if dataset is not None:
            summary.splits[split] = _summarise_split(dataset, split, summary.problems)
    case_table = getattr(datamodule, "case_table", None)
    if case_table is not None:
        try:
            summary.cases = case_table()
        except DataError as error:
            summary.problems.extend(problem_lines(error))
    if config.label_budget is not None:
        try:
            labeled, unlabeled = datamodule.budget_indices()
        except DataError as error:
            summary.problems.append(str(error))
        else:
            labels = datamodule.train_labels()
            summary.splits["train: labeled"] = SplitSummary(items=len(labeled), classes=Counter(labels[labeled].tolist()))
            summary.splits["train: unlabeled"] = SplitSummary(items=len(unlabeled))
    return summary


def _counter(counter: Counter, names: list[str] | None = None) -> str:
    if not counter:
        return "-"
    label = (lambda k: names[k] if names and isinstance(k, int) and 0 <= k < len(names) else str(k))
    return ", ".join(f"{label(key)}: {count}" for key, count in sorted(counter.items(), key=lambda kv: str(kv[0])))


def supported_tasks(summary: DataSummary) -> str:
    """What the data can train: pretraining always; classification with class labels, segmentation with masks."""
    tasks = ["self-supervised pretraining"]
    if any(split.classes for split in summary.splits.values()):
        count = len(summary.class_names) or len({k for split in summary.splits.values() for k in split.classes})
        tasks.append(f"classification ({count} classes)")
    if any(split.mask_values for split in summary.splits.values()):
        tasks.append("segmentation (masks)")
    return ", ".join(tasks)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines of left-aligned columns under ``header``."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]


def format_summary(summary: DataSummary) -> str:
    """The summary as a plain-text table and a list of problems."""
    header = ["split", "items", "patients", "classes", "shapes", "spacing (mm)", "intensity", "mask values"]
    rows = []
    for split, s in summary.splits.items():
        intensity = f"[{s.intensity[0]:.3g}, {s.intensity[1]:.3g}]" if s.intensity else "-"
        rows.append(
            [
                split,
                str(s.items),
                "-" if s.patients is None else str(s.patients),
                _counter(s.classes, summary.class_names),
                _counter(Counter({"x".join(map(str, k)): v for k, v in s.shapes.items()})),
                _counter(Counter({"x".join(map(str, k)): v for k, v in s.spacings.items()})),
                intensity,
                ", ".join(map(str, sorted(s.mask_values))) or "-",
            ]
        )
    lines = [f"data {summary.name} at {summary.root}", "", *table(header, rows)]
    if summary.splits:
        lines += ["", f"supports: {supported_tasks(summary)}"]
    if summary.cases is not None:
        lines += ["", f"cases: {len(summary.cases[1])}", *table(*summary.cases)]
    lines += ["", f"problems found: {len(summary.problems)}", *(f"- {p}" for p in summary.problems)]
    return "\n".join(lines)
