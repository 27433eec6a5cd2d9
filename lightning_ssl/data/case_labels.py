"""Class labels of cases read from a table (CSV): one row per case, a column naming the case and one holding its value,
turned into classes by a map of values (``{1: 0, 2: 0, 4: 1}``), a threshold (``value >= t`` is class 1) or, with
neither, one class per distinct value. An empty cell leaves the case unlabeled; a value the rule cannot place is a
problem naming the file, the line and the case.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning_ssl.data.errors import DataError
from lightning_ssl.errors import ConfigError

MISSING = {"", "na", "nan", "none", "null"}
"""Cell texts that mean "no value": the case stays unlabeled."""


def value_text(value: Any) -> str:
    """A table value or a map key as comparable text: numbers without a trailing ``.0`` (``5``, ``5.0`` -> ``5``)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def label_map_pairs(value: Any) -> list[tuple[str, Any]]:
    """The (table value, class) pairs of ``data.label_map``: a mapping, or text ``{1:0,2:0,4:1}``.

    Written here because of how YAML 1.1 (OmegaConf's parser) reads ``{1:0,4:1}`` on the command line: ``1:0`` is the
    base-60 number 60 and ``a:b`` a key without value, so each such key is read back into its pair.
    """
    not_a_map = ConfigError(
        f"data.label_map={value!r} is not a map: write 'data.label_map={{1: 0, 2: 0, 4: 1}}' in quotes (a shell expands "
        f"unquoted braces into several overrides)"
    )
    if isinstance(value, str):
        entries = [part.split(":", 1) for part in value.strip().strip("{}").split(",") if part.strip()]
        if not entries or any(len(entry) != 2 for entry in entries):
            raise not_a_map
        return [(value_text(key), _class_value(target)) for key, target in entries]
    if not isinstance(value, Mapping):
        raise not_a_map
    pairs = []
    for key, target in value.items():
        if target is None and isinstance(key, int) and not isinstance(key, bool):
            key, target = divmod(key, 60)  # YAML 1.1 read "a:b" as a * 60 + b
        elif target is None and isinstance(key, str) and ":" in key:
            key, target = key.rsplit(":", 1)
        elif target is None:
            raise ConfigError(f"data.label_map gives no class for {key!r}: write 'data.label_map={{1: 0, 2: 0, 4: 1}}'")
        pairs.append((value_text(key), _class_value(target)))
    return pairs


def _class_value(target: Any) -> Any:
    """A class of the map: an index when it reads as a whole number, else a class name."""
    text = str(target).strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else text


@dataclass(frozen=True)
class LabelRule:
    """How a table value becomes a class index: ``mapping`` (value text -> index), ``threshold`` (two classes:
    below, at or above), or neither (one class per value of ``values``, in order); ``names``: one per class."""

    column: str
    names: tuple[str, ...]
    mapping: dict[str, int] | None = None
    threshold: float | None = None

    def classify(self, text: str) -> int:
        """The class of one value; ValueError saying why there is none."""
        if self.threshold is not None:
            number = _number(text)
            if number is None or math.isnan(number):
                raise ValueError(f"is not a number (data.label_threshold={self.threshold:g} compares numbers)")
            return int(number >= self.threshold)
        assert self.mapping is not None
        if value_text(text) not in self.mapping:
            raise ValueError(f"is not in data.label_map (values {', '.join(self.mapping)})")
        return self.mapping[value_text(text)]


def _ordered_values(values: Iterable[str]) -> list[str]:
    """Distinct values, numerically sorted when all are numbers, else as text."""
    distinct = sorted(set(values))
    numbers = [_number(v) for v in distinct]
    return [v for _, v in sorted(zip(numbers, distinct))] if None not in numbers else distinct


def label_rule(column: str, label_map: Any, threshold: float | None, class_names: list[str] | None, values: Iterable[str]) -> LabelRule:
    """The rule of the settings; ``values`` (the column's non-empty values) name the classes when neither a map nor a
    threshold is given. ConfigError for a map that is not one, classes that are not 0..K-1 and names of another count."""
    if label_map is not None and threshold is not None:
        raise ConfigError("data.label_map and data.label_threshold both say how to make classes: set only one")
    if threshold is not None:
        rule = LabelRule(column, (f"{column} < {threshold:g}", f"{column} >= {threshold:g}"), threshold=float(threshold))
    elif label_map is not None:
        pairs = label_map_pairs(label_map)
        targets = [target for _, target in pairs]
        if all(isinstance(t, int) for t in targets):
            count = max(targets) + 1
            if sorted(set(targets)) != list(range(count)):
                raise ConfigError(f"data.label_map maps to classes {sorted(set(targets))}: use every class 0..{count - 1}")
            names = tuple(f"{column} {','.join(k for k, t in pairs if t == c)}" for c in range(count))
            rule = LabelRule(column, names, mapping={key: target for key, target in pairs})
        else:
            names = tuple(dict.fromkeys(str(t) for t in targets))
            rule = LabelRule(column, names, mapping={key: names.index(str(target)) for key, target in pairs})
    else:
        ordered = _ordered_values(values)
        rule = LabelRule(column, tuple(f"{column} {v}" for v in ordered), mapping={value_text(v): k for k, v in enumerate(ordered)})
    if class_names is not None:
        if len(class_names) != len(rule.names):
            raise ConfigError(f"data.class_names has {len(class_names)} names but the labels make {len(rule.names)} classes ({', '.join(rule.names)})")
        rule = LabelRule(rule.column, tuple(class_names), rule.mapping, rule.threshold)
    return rule


@dataclass(frozen=True)
class Row:
    """One table row: its line in the file, the case it names and its value (empty: unlabeled)."""

    line: int
    case: str
    value: str


class CaseLabelTable:
    """The rows of a case table (``path``: CSV with a header) and the class of each case under ``rule``."""

    def __init__(self, path: Path, case_column: str, label_column: str) -> None:
        self.path = path
        self.case_column = case_column
        self.label_column = label_column
        self.rows = self._read()

    def _read(self) -> list[Row]:
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                columns = reader.fieldnames or []
                missing = [c for c in (self.case_column, self.label_column) if c not in columns]
                if missing:
                    raise DataError(
                        f"{self.path} has no column {', '.join(map(repr, missing))} (its columns: {', '.join(columns) or 'none'}): "
                        f"set data.case_column and data.label_column"
                    )
                return [
                    Row(reader.line_num, (row[self.case_column] or "").strip(), (row[self.label_column] or "").strip())
                    for row in reader
                ]
        except OSError as error:
            raise DataError(f"cannot read data.case_labels={str(self.path)!r}: {error.strerror or error}") from None
        except (csv.Error, UnicodeDecodeError) as error:
            raise DataError(f"{self.path} is not a readable CSV table: {error}") from None

    def values(self) -> list[str]:
        """The non-empty values of the label column."""
        return [row.value for row in self.rows if row.value.lower() not in MISSING]

    def labels(self, rule: LabelRule) -> tuple[dict[str, int], list[str]]:
        """(class of each labeled case, one problem line per row the rule cannot place or case named twice)."""
        labels: dict[str, int] = {}
        seen: dict[str, int] = {}
        problems = []
        for row in self.rows:
            where = f"{self.path} line {row.line} (case {row.case or '?'})"
            if not row.case:
                problems.append(f"{where}: the {self.case_column} cell is empty: name the case or delete the row")
                continue
            if row.case in seen:
                problems.append(f"{where}: case {row.case} is already on line {seen[row.case]}: keep one row per case")
                continue
            seen[row.case] = row.line
            if row.value.lower() in MISSING:
                continue
            try:
                labels[row.case] = rule.classify(row.value)
            except ValueError as reason:
                problems.append(f"{where}: {self.label_column}={row.value!r} {reason}: fix the value, or empty the cell to leave the case unlabeled")
        return labels, problems
