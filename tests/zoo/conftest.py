"""Fixtures for the zoo tests: isolated stores, built-in names registered by a test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lightning_ssl import zoo


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's store, even one that forgets ``store=``."""
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "default_store"))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty store for one test."""
    return tmp_path / "store"


@pytest.fixture
def builtin_names() -> Iterator[list[str]]:
    """Names registered during a test are removed from the built-in registry afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        zoo.BUILTIN.pop(name, None)
