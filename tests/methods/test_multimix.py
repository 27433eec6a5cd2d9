"""MultiMix: FixMatch pseudo-labels, the saliency bridge, partial batches, logging, the CLI run and the zoo entry."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import TINY_XRAY_PAIR
from method_helpers import build_method
from PIL import Image
from real_data import shared_file

from lightning_ssl import zoo
from lightning_ssl.cli import main
from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.data import DATASETS
from lightning_ssl.methods.multimix import MultiMixMethod, pseudo_label_loss
from lightning_ssl.train import pretrain

TINY = [*TINY_XRAY_PAIR, "data.segmentation.label_budget=3", "trainer.enable_progress_bar=false"]


def _method(*overrides: str) -> MultiMixMethod:
    return build_method("multimix", *TINY, *overrides)


def _batch(*overrides: str) -> dict[str, Any]:
    cfg = build_config(["method=multimix", *TINY, *overrides])
    datamodule = DATASETS[cfg.data.name](cfg.data)
    datamodule.setup("fit")
    batch, _, _ = next(iter(datamodule.semi_supervised_dataloader()))
    return batch


def _logged(method: MultiMixMethod, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    logged: dict[str, float] = {}
    monkeypatch.setattr(method, "log", lambda name, value, **_: logged.__setitem__(name, float(value)))
    return logged


def test_pseudo_labels_count_only_above_the_threshold() -> None:
    strong = torch.tensor([[0.0, 2.0], [1.0, -1.0]], requires_grad=True)
    confident, unconfident = torch.tensor([[6.0, -6.0], [-6.0, 6.0]]), torch.tensor([[0.1, 0.0], [0.0, 0.1]])
    loss, kept = pseudo_label_loss(unconfident, strong, threshold=0.7)
    assert loss.item() == 0.0 and float(kept) == 0.0
    loss, kept = pseudo_label_loss(confident, strong, threshold=0.7)
    assert float(kept) == 1.0 and loss.item() == pytest.approx(F.cross_entropy(strong, torch.tensor([0, 1])).item())
    mixed = torch.stack([confident[0], unconfident[1]])
    loss, kept = pseudo_label_loss(mixed, strong, threshold=0.7)
    assert float(kept) == 0.5 and loss.item() == pytest.approx(F.cross_entropy(strong[:1], torch.tensor([0])).item() / 2)
    loss.backward()
    assert strong.grad is not None and float(strong.grad[1].abs().sum()) == 0.0


def test_the_saliency_bridge_feeds_an_input_dependent_map_into_the_decoder() -> None:
    method = _method().eval()
    torch.manual_seed(0)
    images = torch.rand(2, 1, 32, 32)
    features, saliency = method.saliency_pass(images)
    assert saliency.shape == (2, 1, 32, 32) and not saliency.requires_grad
    assert float(saliency.min()) >= 0.0 and float(saliency.amax(dim=(1, 2, 3)).min()) == pytest.approx(1.0)
    extra = method.bridge(images, saliency, features[-1].shape[2:])
    assert extra.shape == features[-1].shape and extra.abs().sum().item() > 0
    other_features, other_saliency = method.saliency_pass(images.flip(-2))
    assert not torch.allclose(method.bridge(images.flip(-2), other_saliency, features[-1].shape[2:]), extra)
    with torch.no_grad():
        bridged, plain = method.network.decoder(features, bottleneck_extra=extra), method.network.decoder(features)
    assert not torch.allclose(bridged, plain)
    assert torch.allclose(method.segment(images)[0], bridged)


def test_segmentation_runs_under_inference_mode_as_in_validation() -> None:
    method = _method().eval()
    with torch.inference_mode():
        logits, saliency = method.segment(torch.rand(2, 1, 32, 32))
    assert logits.shape == (2, 1, 32, 32) and float(saliency.sum()) > 0


def test_every_term_and_the_pseudo_label_rate_are_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    method = _method()
    logged = _logged(method, monkeypatch)
    loss = method.training_step(_batch(), 0)
    loss.backward()
    expected = {"train/cls_loss", "train/pseudo_loss", "train/dice_loss", "train/consistency_loss", "train/loss"}
    assert expected | {"train/pseudo_label_rate"} <= set(logged)
    weights = {"cls": 1.0, "pseudo": 0.25, "dice": 5.0, "consistency": 0.01}
    assert logged["train/loss"] == pytest.approx(sum(w * logged[f"train/{k}_loss"] for k, w in weights.items()), rel=1e-5)
    assert logged["train/consistency_loss"] > 0
    assert all(p.grad is not None for p in method.bridge.parameters())


CLS, SEG = "classification", "segmentation"


@pytest.mark.parametrize(
    "parts",
    [((CLS, "labeled"),), ((SEG, "labeled"),), ((CLS, "unlabeled"), (SEG, "unlabeled")), ((CLS, "labeled"), (SEG, "unlabeled"))],
)
def test_a_batch_missing_parts_trains_on_the_terms_it_has(parts: tuple[tuple[str, str], ...], monkeypatch: pytest.MonkeyPatch) -> None:
    method = _method("method.threshold=0.0")
    logged = _logged(method, monkeypatch)
    full = _batch()
    batch: dict[str, dict[str, Any]] = {}
    for task, kind in parts:
        batch.setdefault(task, {})[kind] = full[task][kind]
    loss = method.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    terms = {name.split("/")[1][: -len("_loss")] for name in logged if name.endswith("_loss") and name != "train/loss"}
    expected = {(CLS, "labeled"): "cls", (CLS, "unlabeled"): "pseudo", (SEG, "labeled"): "dice"}
    assert terms == {expected[p] for p in parts if p in expected}
    with pytest.raises(KeyError, match="needs batches with some of"):
        method.training_step({"labeled": full[CLS]["labeled"]}, 0)


def test_two_channel_output_trains() -> None:
    method = _method("method.seg_channels=2")
    method.log = lambda *args, **kwargs: None
    method.training_step(_batch(), 0).backward()
    assert method.network.decoder.out_channels == 2 and method.output_activation == "softmax"


def test_configs_it_cannot_train_are_refused() -> None:
    with pytest.raises(ConfigError, match="seg_channels=3"):
        _method("method.seg_channels=3")
    with pytest.raises(ConfigError, match="2D method"):
        build_method("multimix", "data=phantom_ct", "network.features=[4,8,16]")


def _metrics_rows(output_dir: Path) -> list[dict[str, str]]:
    (log_file,) = output_dir.glob("*/*/logs/version_0/metrics.csv")
    return list(csv.DictReader(log_file.open()))


@pytest.mark.slow
def test_cli_run_validates_both_tasks_and_publishes_encoder_and_decoder(tmp_path: Path) -> None:
    one_short_epoch = ["trainer.limit_train_batches=2", "trainer.max_epochs=1"]
    assert main(["pretrain", "method=multimix", *TINY, *one_short_epoch, f"output_dir={tmp_path}"]) == 0
    validated = next(row for row in _metrics_rows(tmp_path) if row.get("val/loss"))
    classification = ("acc", "auc", "f1", "f1_normal", "f1_pneumonia")
    for name in (*classification, "dice", "jaccard", "avg_hausdorff", "ssim", "precision", "recall"):
        assert validated[f"val/{name}"], name
    entry = Path(os.environ["LIGHTNING_SSL_ZOO"]) / "multimix_multitask" / "v1"
    metadata = json.loads((entry / "metadata.json").read_text())
    assert set(metadata["files"]) == {"encoder", "decoder"} and metadata["method"] == "multimix"
    assert "saliency bridge" in metadata["usage_notes"] and "saliency bridge" in zoo.info("multimix_multitask")
    assert metadata["data_config"]["segmentation"]["name"] == "phantom_xray" and metadata["output_activation"] == "sigmoid"
    network = zoo.load("multimix_multitask", part="model")
    assert network(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    previews = list(tmp_path.glob("*/*/logs/version_0/images/val_segmentation_step*.png"))
    assert previews, "no segmentation preview was written"
    caption = Image.open(previews[0]).text["Description"]
    assert "rows from top: image, saliency, foreground probability, true mask" in caption


@pytest.mark.slow
def test_real_pneumoniamnist_labels_and_lung_masks_at_64_px(tmp_path: Path) -> None:
    shared_file("pneumoniamnist/pneumoniamnist.npz")
    shared_file("xray_lung_seg/1-mask.png")
    cfg = build_config(
        [
            "method=multimix",
            "config=experiments/data/xray_multitask_real.yaml",
            "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=3",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            f"output_dir={tmp_path}",
        ]
    )
    result = pretrain(cfg)
    assert cfg.data.classification.label_budget == 100 and cfg.data.patch_size == [64, 64]
    assert 0.0 <= result.metrics["val/acc"] <= 1.0 and 0.0 <= result.metrics["val/dice"] <= 1.0
    assert (result.zoo_entry / "encoder.safetensors").is_file() and (result.zoo_entry / "decoder.safetensors").is_file()
