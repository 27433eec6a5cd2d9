"""Publishing from a Lightning checkpoint file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from zoo_helpers import small_unet, unet_metadata

from lightning_ssl import zoo


@dataclass
class ConfigObject:
    """Stands for a non-tensor object Lightning may pickle into hyper_parameters."""

    lr: float


def lightning_checkpoint(path: Path, network: torch.nn.Module, hyper_parameters: dict[str, Any]) -> Path:
    """A Lightning-style checkpoint whose module holds ``network`` as ``self.network``."""
    state = {f"network.{key}": value for key, value in network.state_dict().items()}
    state["projector.weight"] = torch.zeros(3, 3)
    torch.save({"epoch": 3, "global_step": 30, "state_dict": state, "hyper_parameters": hyper_parameters}, path)
    return path


def test_publish_from_checkpoint(tmp_path: Path, store: Path) -> None:
    network = small_unet(seed=3)
    metadata = unet_metadata(method="genesis", data="toy", metrics={"val_loss": 0.5})
    path = lightning_checkpoint(tmp_path / "last.ckpt", network, {"lr": 0.1, "zoo_metadata": metadata})
    directory = zoo.publish(path, "from_ckpt", store=store)
    assert directory == store / "from_ckpt" / "v1"
    loaded = zoo.load("from_ckpt", part="model", store=store)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), network(x))
    assert zoo.list(store=store)[0]["method"] == "genesis"


def test_checkpoint_with_non_tensor_objects_is_refused_in_one_line(tmp_path: Path, store: Path) -> None:
    hyper_parameters = {"config": ConfigObject(lr=0.1), "zoo_metadata": unet_metadata()}
    path = lightning_checkpoint(tmp_path / "last.ckpt", small_unet(), hyper_parameters)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    with pytest.raises(ValueError, match=r"it asks to import .*ConfigObject.* not unpickled") as refused:
        zoo.publish(path, "from_ckpt", store=store)
    assert "\n" not in str(refused.value) and zoo.versions("from_ckpt", store=store) == []


def test_missing_zoo_metadata_is_a_clear_error(tmp_path: Path, store: Path) -> None:
    path = lightning_checkpoint(tmp_path / "last.ckpt", small_unet(), {"lr": 0.1})
    with pytest.raises(ValueError, match=r"has no hyper_parameters\['zoo_metadata'\]"):
        zoo.publish(path, "from_ckpt", store=store)
    torch.save({"state_dict": {}}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match=r"has no hyper_parameters\['zoo_metadata'\]"):
        zoo.publish(tmp_path / "bare.ckpt", "from_ckpt", store=store)
    assert zoo.versions("from_ckpt", store=store) == []


def test_missing_network_weights_are_named(tmp_path: Path, store: Path) -> None:
    network = small_unet()
    torch.save(
        {
            "state_dict": {f"model.{key}": value for key, value in network.state_dict().items()},
            "hyper_parameters": {"zoo_metadata": unet_metadata()},
        },
        tmp_path / "other_prefix.ckpt",
    )
    with pytest.raises(ValueError, match=r"has no network\.encoder\.\* weights"):
        zoo.publish(tmp_path / "other_prefix.ckpt", "from_ckpt", store=store)
    state = {f"network.{key}": value for key, value in network.state_dict().items()}
    dropped = next(key for key in state if key.startswith("network.decoder."))
    del state[dropped]
    torch.save({"state_dict": state, "hyper_parameters": {"zoo_metadata": unet_metadata()}}, tmp_path / "short.ckpt")
    with pytest.raises(ValueError, match=re.escape(dropped.removeprefix("network.decoder."))):
        zoo.publish(tmp_path / "short.ckpt", "from_ckpt", store=store)
    with pytest.raises(FileNotFoundError):
        zoo.publish(tmp_path / "absent.ckpt", "from_ckpt", store=store)


def test_real_lightning_checkpoint(tmp_path: Path, store: Path) -> None:
    pl = pytest.importorskip("pytorch_lightning")
    architecture = unet_metadata()["architecture"]

    class Pretraining(pl.LightningModule):
        def __init__(self, zoo_metadata: dict[str, Any], lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.network = small_unet().train()

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            return self.network(batch[0]).pow(2).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    module = Pretraining({"architecture": architecture, "method": "genesis", "data": "toy"})
    trainer = pl.Trainer(
        max_steps=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    data = torch.utils.data.TensorDataset(torch.randn(2, 1, 16, 16))
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=2))
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    torch.load(tmp_path / "last.ckpt", weights_only=True)
    loaded = zoo.load(zoo.publish(tmp_path / "last.ckpt", "real", store=store).parent.name, part="model", store=store)
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), module.network.eval()(x))
