"""Fixtures for the zoo tests: isolated stores and Hugging Face cache, built-in names registered by a test, a fake Hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
from fake_hub import FakeHub

from lightning_ssl import zoo


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's store or Hugging Face cache, even one that forgets ``store=``; the Hub is never
    the internet's (``HF_ENDPOINT`` points at a port where nothing listens unless a test starts a fake Hub)."""
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "default_store"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


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


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fake Hugging Face Hub on 127.0.0.1 that ``HF_ENDPOINT`` points to."""
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub
