"""Shared fixtures: isolated zoo/W&B folders for every test (the real images are found by ``real_data``)."""

import pytest


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path, monkeypatch):
    """Every test gets its own zoo store and W&B folder; W&B never goes online."""
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_SILENT", "true")
