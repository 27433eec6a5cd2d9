"""BYOL: the EMA target and its schedule, the symmetric loss, the patient-metadata head, identical targets on 2 ranks."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from helpers import tiny
from method_helpers import build_method, pneumoniamnist_run, small
from omegaconf import OmegaConf

import lightning_ssl.methods.byol as byol_module
from lightning_ssl.config import build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods.byol import BYOLMethod, target_momentum
from lightning_ssl.models import MetadataHead


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_momentum_rises_from_base_to_one_on_a_cosine() -> None:
    values = [target_momentum(step, 100, 0.996) for step in range(101)]
    assert values[0] == pytest.approx(0.996) and values[-1] == pytest.approx(1.0)
    assert values[50] == pytest.approx(0.998)
    assert all(a <= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_loss_trains_the_online_network_and_never_the_target(spatial_dims: int) -> None:
    method = build_method("byol", *small(spatial_dims))
    images = torch.rand(4, 1, *([32, 32] if spatial_dims == 2 else [32, 32, 16]))
    loss = method.training_step({"image": images}, 0)
    loss.backward()
    assert 0 <= loss.item() <= 4
    assert all(p.grad is not None for p in method.network.encoder.parameters())
    assert all(p.grad is not None for p in method.predictor.parameters())
    assert all(p.grad is None and not p.requires_grad for p in method.target_encoder.parameters())
    assert torch.equal(_flat(method.target_encoder), _flat(method.network.encoder))


def test_loss_is_symmetric_in_the_two_views() -> None:
    method = build_method("byol", *small(2)).eval()
    first, second = torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        forward = method.ssl_loss([first, second], [method.representation(first), method.representation(second)])
        backward = method.ssl_loss([second, first], [method.representation(second), method.representation(first)])
    assert forward == pytest.approx(backward.item(), abs=1e-6)


def test_target_moves_once_per_optimiser_step_under_gradient_accumulation(tmp_path: Path, monkeypatch) -> None:
    calls = []
    original = byol_module.ema_update
    monkeypatch.setattr(byol_module, "ema_update", lambda target, online, tau: (calls.append(tau), original(target, online, tau)))
    cfg = build_config(tiny(tmp_path, "method=byol"))
    datamodule = DATASETS[cfg.data.name](cfg.data)
    method = BYOLMethod(OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    before = _flat(method.target_encoder)
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    pl.Trainer(max_steps=3, accumulate_grad_batches=2, limit_val_batches=0, **quiet).fit(method, datamodule=datamodule)
    assert method.global_step == 3
    assert len(calls) == 2 * 3  # encoder and projector, once per optimiser step
    assert not torch.equal(before, _flat(method.target_encoder))
    assert not torch.equal(_flat(method.target_encoder), _flat(method.network.encoder))


def test_metadata_head_ignores_unknown_values_and_keeps_its_vocabulary() -> None:
    torch.manual_seed(0)
    head = MetadataHead(8, ["p1", "p2", "p3"], hidden=16)
    features = torch.randn(4, 8)
    logits = head.mlp(features)
    known = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([0, 2]))
    assert head(features, ["p1", "unseen", "p3", None]).item() == pytest.approx(known.item(), abs=1e-6)
    nothing = head(features, ["unseen", None, "x", "y"])
    assert nothing.item() == 0 and nothing.requires_grad
    restored = MetadataHead(8, ["x", "y", "z"], hidden=16)
    restored.load_state_dict(head.state_dict())
    assert restored.vocabulary == ["p1", "p2", "p3"] and restored.targets(["p3"]).tolist() == [2]


def _with_head(tmp_path: Path, *overrides: str) -> tuple[BYOLMethod, object]:
    cfg = build_config(tiny(tmp_path, "method=byol", *overrides))
    datamodule = DATASETS[cfg.data.name](cfg.data)
    method = BYOLMethod(OmegaConf.to_container(cfg, resolve=True), datamodule.info.as_dict())
    method._trainer = type("Trainer", (), {"datamodule": datamodule})()
    method.setup("fit")
    method._trainer = None
    return method, datamodule


def test_metadata_head_is_on_by_default_and_reaches_the_encoder(tmp_path: Path) -> None:
    method, datamodule = _with_head(tmp_path)
    assert method.metadata_head.vocabulary == datamodule.metadata_vocabulary("patient_id")
    batch = next(iter(datamodule.train_dataloader()))
    gradients = []
    for weight in (0.0, 5.0):
        method.cfg.method.metadata_weight = weight
        method.zero_grad()
        torch.manual_seed(0)
        method.training_step(batch, 0).backward()
        gradients.append(torch.cat([p.grad.flatten() for p in method.network.encoder.parameters()]))
    assert not torch.allclose(gradients[0], gradients[1])


def test_metadata_head_is_off_and_says_so_when_the_column_is_missing(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        method, _ = _with_head(tmp_path, "method.metadata_column=scanner")
    assert method.metadata_head is None
    assert sum("no 'scanner' column: the metadata head is off" in r.message for r in caplog.records) == 1


@pytest.mark.ddp
@pytest.mark.slow
def test_target_networks_are_identical_on_both_ranks(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("ddp_byol_worker.py")
    args = [a for a in tiny(tmp_path) if not a.startswith("trainer.")] + ["trainer.max_steps=4"]
    done = subprocess.run([sys.executable, str(worker), str(tmp_path), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"targets_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    initial = build_method("byol", *[a for a in args if a.startswith(("network.", "data.spatial", "data.patch"))])
    assert not torch.equal(rank0["online.encoder"], _flat(initial.network.encoder))


@pytest.mark.slow
def test_learns_on_real_pneumoniamnist_and_publishes(tmp_path: Path) -> None:
    epochs, prior, entry = pneumoniamnist_run("byol", tmp_path, 3)
    assert len(epochs) == 3
    # BYOL's loss chases a moving target (the EMA network) and need not fall from epoch to epoch; the linear probe on
    # the frozen features is the oracle, and a collapsed encoder (loss near 0, every view mapped to one point) fails it.
    assert epochs[-1]["val/loss"] > 0.05, "the online and target projections agree on everything: collapse"
    assert epochs[-1]["val/probe_acc"] > prior + 0.01, f"probe accuracy {epochs[-1]['val/probe_acc']:.3f} vs class prior {prior:.3f}"
    assert (entry / "encoder.safetensors").is_file()
