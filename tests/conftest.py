"""Shared fixtures: where the real public images live, and isolated zoo/W&B folders."""

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file from ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data {path} is absent (the project's ../shared/data folder holds it)")
    return path


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path, monkeypatch):
    """Every test gets its own zoo store and W&B folder; W&B never goes online."""
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_SILENT", "true")
