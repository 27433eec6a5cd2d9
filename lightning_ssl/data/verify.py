"""Bad input files found at setup, before the first optimiser step, and every one of them named.

A DataModule collects its problems (``Problems``) instead of stopping at the first, and raises them together as one
``DataProblems``: its message is the first problem and how many more there are, one line for the command line;
``check-data`` prints every one. ``verify_files`` runs a cheap check of each item's files (a header or a reduced
decode) in ``data.num_workers`` threads and records the items that passed, keyed by their files' paths, sizes and
modification times, so a later run checks only what changed. ``data.verify=false`` skips that pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lightning_ssl.data.disk_cache import cache_folder, source_stamp
from lightning_ssl.data.errors import DataError
from lightning_ssl.errors import one_line

CACHE_ENV = "LIGHTNING_SSL_CACHE"
CHECKS_VERSION = 1
"""Bumped when a check finds more than before, so items recorded by an older check are checked again."""


class DataProblems(DataError):
    """Several problems found at once: the message is the first one and how many more; ``problems`` lists them all."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem(s): `python -m lightning_ssl check-data` with the same data settings lists them)"
        super().__init__(self.problems[0] + (suffix if more else ""))


def problem_lines(error: DataError) -> list[str]:
    """Every problem an error carries, one line each."""
    return list(error.problems) if isinstance(error, DataProblems) else [one_line(error)]


class Problems:
    """The problems met while reading a dataset, one line each, raised together by ``raise_any``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Note a DataError raised in the block and carry on after it."""
        try:
            yield
        except DataError as error:
            self.lines.extend(problem_lines(error))

    def raise_any(self) -> None:
        """Raise every problem noted so far as one DataProblems."""
        if self.lines:
            raise DataProblems(self.lines)


@dataclass(frozen=True)
class FileCheck:
    """One item's files and the check that raises a DataError naming the bad one; ``settings`` say what else the
    check depends on (e.g. the label convention), so a change checks again."""

    sources: tuple[Path, ...]
    check: Callable[[], None]
    settings: str = ""


def record_folder(config: Any) -> Path:
    """Where the record of checked items lives: ``data.cache_dir/verified``, else ``$LIGHTNING_SSL_CACHE/verified``
    (default ``~/.cache/lightning_ssl/verified``)."""
    if config.get("cache_dir"):
        return cache_folder(config.cache_dir, "verified")
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lightning_ssl").expanduser()
    return cache_folder(str(base), "verified")


def _item_key(check: FileCheck) -> str:
    return hashlib.sha256(f"{CHECKS_VERSION}|{source_stamp(check.sources)}|{check.settings}".encode()).hexdigest()[:24]


def _read_record(path: Path) -> set[str]:
    try:
        return set(json.loads(path.read_text()))
    except (OSError, ValueError):
        return set()  # no record yet, or an unreadable one: everything is checked


def _write_record(path: Path, keys: set[str]) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(sorted(keys)))
        os.replace(partial, path)
    except OSError:
        pass  # the record only saves time: a run that cannot write it checks again next time


def verify_files(checks: Sequence[FileCheck], config: Any, kind: str) -> None:
    """Run every check not recorded as passed (``data.num_workers`` threads); DataProblems listing every failure.

    Skipped with ``data.verify=false``. Files that vanished are a problem like any other.
    """
    if not config.get("verify", True) or not checks:
        return
    root = str(Path(config.root).expanduser().resolve()) if config.get("root") else ""
    try:
        record: Path | None = record_folder(config) / f"{kind}-{hashlib.sha256(root.encode()).hexdigest()[:16]}.json"
    except DataError:
        record = None  # no writable cache folder: every file is checked, every run
    passed = _read_record(record) if record is not None else set()
    problems = Problems()
    todo: list[tuple[str, FileCheck]] = []
    for check in checks:
        try:
            key = _item_key(check)
        except OSError as error:
            problems.lines.append(f"cannot read {error.filename or check.sources[0]}: {error.strerror or one_line(error)}")
            continue
        if key not in passed:
            todo.append((key, check))

    def run(check: FileCheck) -> list[str]:
        try:
            check.check()
        except DataError as error:
            return problem_lines(error)
        return []

    with ThreadPoolExecutor(max_workers=max(1, int(config.get("num_workers") or 0))) as pool:
        found = list(tqdm(pool.map(run, [c for _, c in todo]), total=len(todo), desc=f"checking {kind} files", leave=False, disable=len(todo) < 100))
    for lines in found:
        problems.lines.extend(lines)
    newly = {key for (key, _), lines in zip(todo, found) if not lines}
    if newly and record is not None:
        _write_record(record, passed | newly)
    problems.raise_any()
