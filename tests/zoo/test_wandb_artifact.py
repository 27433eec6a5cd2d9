"""A pretraining run logging to W&B online uploads its zoo entry as a model artifact; offline runs do not."""

from pathlib import Path

import pytest
from helpers import tiny

from lightning_ssl import train
from lightning_ssl.config import build_config
from lightning_ssl.train import pretraining


class RecordingRun:
    """A stand-in for an online W&B run that keeps the artifacts it is given."""

    offline = False

    def __init__(self) -> None:
        self.logged: list[tuple[object, list[str]]] = []
        self.experiment = self

    def log_artifact(self, artifact: object, aliases: list[str]) -> None:
        self.logged.append((artifact, aliases))


@pytest.mark.slow
def test_online_run_uploads_the_published_entry_as_a_model_artifact(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    run = RecordingRun()
    monkeypatch.setattr(pretraining, "wandb_logger", lambda trainer: run)
    result = train.pretrain(build_config(tiny(tmp_path, "trainer.max_steps=1", "zoo.name=tiny_genesis")))
    ((artifact, aliases),) = run.logged
    files = {entry.path for entry in artifact.manifest.entries.values()}
    assert artifact.name == "tiny_genesis" and artifact.type == "model" and aliases == ["latest", "v1"]
    assert {p.name for p in result.zoo_entry.iterdir()} <= files and {"encoder.safetensors", "metadata.json"} <= files
    assert artifact.metadata["method"] == "genesis" and "architecture" in artifact.metadata


@pytest.mark.slow
def test_offline_run_uploads_nothing(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")

    def refuse(*args: object) -> None:
        raise AssertionError("an offline run must not upload an artifact")

    monkeypatch.setattr(pretraining, "log_zoo_artifact", refuse)
    result = train.pretrain(build_config(tiny(tmp_path, "trainer.max_steps=1", "logger=wandb", "zoo.name=tiny_genesis")))
    assert result.zoo_entry is not None
