"""Downstream results of an entry (e.g. a label-efficiency benchmark's gain over scratch), kept in
``downstream.json`` beside the entry's files: the checksummed weights and metadata.json are never rewritten."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from lightning_ssl.io.lock import file_lock
from lightning_ssl.zoo.errors import ZooError
from lightning_ssl.zoo.store import entry_dir, parse_ref

DOWNSTREAM_FILE = "downstream.json"
_TEXT_FIELDS = ("task", "metric", "report")
_NUMBER_FIELDS = ("score", "scratch", "gain", "std")


def record_downstream(ref: str, result: Mapping[str, Any], store: str | Path | None = None) -> Path:
    """Record one downstream result of entry ``ref`` (``NAME`` or ``NAME@v<k>``, newest when no version); the file.

    ``result`` holds ``task`` (what was fine-tuned on what), ``metric`` (e.g. ``test/auc``), ``report`` (the file or
    URL the numbers come from) and ``scores``: a list of ``{"labels": int, "gain": float}`` (the gain over training
    from scratch with that many labels), each optionally with ``score``, ``scratch``, ``std`` and ``seeds``. A
    result for the same task and metric replaces the earlier one; the model card shows them all.
    """
    record = _checked(result)
    name, version = parse_ref(ref)
    directory = entry_dir(name, version, store)
    path = directory / DOWNSTREAM_FILE
    with file_lock(directory.parent / f".{directory.name}.downstream.lock"):
        kept = [r for r in downstream_results(directory) if (r["task"], r["metric"]) != (record["task"], record["metric"])]
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staging.write_text(json.dumps({"results": [*kept, record]}, indent=2) + "\n", encoding="utf-8")
        os.replace(staging, path)
    return path


def downstream_results(directory: Path | None) -> list[dict[str, Any]]:
    """The downstream results recorded for the entry in ``directory`` (none for a built-in not fetched yet)."""
    path = None if directory is None else directory / DOWNSTREAM_FILE
    if path is None or not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["results"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ZooError(f"{path} is unreadable ({error}): delete it and record the results again") from None


def _checked(result: Mapping[str, Any]) -> dict[str, Any]:
    """``result`` as plain JSON values; ZooError naming the first field that is missing or of the wrong type."""
    if not isinstance(result, Mapping):
        raise ZooError(f"a downstream result is a dict with {', '.join(_TEXT_FIELDS)} and scores, got {type(result).__name__}")
    for key in _TEXT_FIELDS:
        if not isinstance(result.get(key), str) or not result[key]:
            raise ZooError(f"downstream result needs {key!r} as text (task, metric, report: what, which score, from where)")
    scores = result.get("scores")
    if not isinstance(scores, (list, tuple)) or not scores:
        raise ZooError('downstream result needs "scores": a list of {"labels": int, "gain": float, ...}')
    rows = []
    for index, row in enumerate(scores):
        if not isinstance(row, Mapping) or not isinstance(row.get("labels"), int) or not _number(row.get("gain")):
            raise ZooError(f'downstream scores[{index}] needs "labels" (an int) and "gain" (a number), got {row!r}')
        wrong = [key for key in _NUMBER_FIELDS if key in row and not _number(row[key])]
        if wrong or ("seeds" in row and not isinstance(row["seeds"], int)):
            raise ZooError(f"downstream scores[{index}]: {', '.join(wrong) or 'seeds'} must be numbers, got {row!r}")
        rows.append({key: (float(value) if key in _NUMBER_FIELDS else value) for key, value in row.items()})
    return {**{key: result[key] for key in _TEXT_FIELDS}, "scores": rows}


def _number(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool)."""
    return isinstance(value, Real) and not isinstance(value, bool)
