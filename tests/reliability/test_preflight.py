"""Everything a run writes is checked before it trains: one line naming the key, and nothing trained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import tiny

from lightning_ssl import zoo
from lightning_ssl.cli import main


def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "not_a_folder"
    path.write_text("a file")
    return path


CT_FOLDER = ["data=ct_folder", "data.root=../shared/data/ct", "data.cache=disk", "network.features=[4,8,16]",
             "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("key", ["output_dir", "zoo.store", "data.cache_dir"])
def test_a_folder_under_a_regular_file_is_one_line_before_training(tmp_path: Path, capsys, key: str) -> None:
    target = f"{key}={a_file(tmp_path)}/inside"
    base = [*CT_FOLDER, f"output_dir={tmp_path / 'runs'}"] if key == "data.cache_dir" else tiny(tmp_path / "runs")
    assert main(["pretrain", *base, "trainer.max_steps=1", target]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err and "is a file, not a folder" in err
    assert not list(tmp_path.rglob("*.ckpt"))


def _read_only_store(tmp_path: Path) -> Path:
    """A store folder this process cannot write: a mode 555 folder, or for root (who writes those anyway) a path
    under /sys, which no process may create folders in."""
    if os.geteuid() != 0:
        store = tmp_path / "store"
        store.mkdir()
        store.chmod(0o555)
        return store
    store = Path("/sys/lightning-ssl-store")
    try:
        store.mkdir()
    except OSError:
        return store
    store.rmdir()
    pytest.skip("running as root and /sys is writable: no read-only folder to be had")


def test_a_read_only_store_is_one_line_before_training(tmp_path: Path, capsys) -> None:
    store = _read_only_store(tmp_path)
    try:
        assert main(["pretrain", *tiny(tmp_path / "runs"), "trainer.max_steps=1", f"zoo.store={store}"]) == 2
    finally:
        if store.is_relative_to(tmp_path):
            store.chmod(0o755)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "zoo.store" in err and not list(tmp_path.rglob("*.ckpt"))


def test_finetune_reads_the_store_zoo_store_names(tmp_path: Path, capsys, monkeypatch) -> None:
    store = tmp_path / "my_store"
    assert main(["pretrain", *tiny(tmp_path / "pre"), "trainer.max_steps=1", "zoo.name=mine", f"zoo.store={store}"]) == 0
    assert zoo.versions("mine", store=store) == [1]
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "elsewhere"))
    args = ["finetune", *tiny(tmp_path / "ft"), "method.task=segmentation", "method.init=zoo:mine", "trainer.max_steps=1"]
    assert main([*args, f"zoo.store={store}"]) == 0
    assert main(args) == 2
    assert "mine" in capsys.readouterr().err


def test_a_label_budget_on_a_self_supervised_method_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["pretrain", *tiny(tmp_path), "data.label_budget=100000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.label_budget=100000 is unused" in err
