"""Fine-tuning: starts from the zoo's weights (or not), freezes what it should, reports test metrics."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import tiny
from method_helpers import build_finetune, build_method
from PIL import Image

from lightning_ssl import zoo
from lightning_ssl.cli import main
from lightning_ssl.config import ConfigError, build_config
from lightning_ssl.methods.finetune import FinetuneMethod, operating_point_logits, youden_threshold
from lightning_ssl.train import TEST_METRICS, finetune, pretrain


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([v.detach().float().flatten() for v in module.state_dict().values()])


@pytest.fixture
def genesis_entry(tmp_path: Path) -> str:
    """A tiny Models Genesis entry in the test's zoo store."""
    pretrain(build_config(tiny(tmp_path / "pre", "trainer.max_steps=2", "zoo.name=tiny_genesis")))
    return "tiny_genesis"


@pytest.mark.slow
def test_zoo_init_starts_from_the_published_weights_and_scratch_does_not(tmp_path: Path, genesis_entry: str) -> None:
    published = _flat(zoo.load(genesis_entry))
    common = (*tiny(tmp_path), "method=finetune")
    from_zoo, from_zoo_report = build_finetune(*common, f"method.init=zoo:{genesis_entry}")
    scratch, scratch_report = build_finetune(*common)
    assert torch.equal(_flat(from_zoo.network.encoder), published)
    assert not torch.allclose(_flat(scratch.network.encoder), published)
    assert from_zoo_report["init"] == genesis_entry and scratch_report == {"init": "scratch"}


def test_segmentation_takes_the_decoder_except_its_output_layer(tmp_path: Path, genesis_entry: str) -> None:
    method, report = build_finetune(*tiny(tmp_path), "method.task=segmentation", f"method.init=zoo:{genesis_entry}")
    decoder = zoo.load(genesis_entry, part="decoder").state_dict()
    own = method.network.decoder.state_dict()
    assert all(torch.equal(own[k], v) for k, v in decoder.items() if not k.startswith("head."))
    assert own["head.conv.conv.weight"].shape[0] == 2 and "from scratch" in report["decoder"]


@pytest.mark.slow
def test_a_fine_tuned_checkpoint_predicts_the_same_after_its_zoo_entry_is_deleted(tmp_path: Path, genesis_entry: str) -> None:
    result = finetune(build_config([*tiny(tmp_path), "method=finetune", f"method.init=zoo:{genesis_entry}", "trainer.max_steps=2"]))
    checkpoint = result.run_dir / "checkpoints" / "last.ckpt"
    images = torch.rand(2, 1, 32, 32, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = FinetuneMethod.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()(images)
        shutil.rmtree(Path(os.environ["LIGHTNING_SSL_ZOO"]) / genesis_entry)
        with pytest.raises(zoo.ZooNotFoundError):
            zoo.load(genesis_entry)
        after = FinetuneMethod.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()(images)
    assert torch.equal(before, after) and before.shape == (2, 2)


@pytest.mark.slow
def test_classification_run_writes_test_metrics(tmp_path: Path, genesis_entry: str) -> None:
    result = finetune(
        build_config(
            [
                *tiny(tmp_path),
                "method=finetune",
                f"method.init=zoo:{genesis_entry}",
                "trainer.max_steps=2",
                "data.test_fraction=0.25",
                "data.val_fraction=0.25",
            ]
        )
    )
    record = json.loads((result.run_dir / TEST_METRICS).read_text())
    assert {"test/acc", "test/auc", "test/f1", "test/loss"} <= set(record["metrics"])
    assert record["init"]["init"] == genesis_entry and 0 <= record["metrics"]["test/acc"] <= 1
    previews = list(result.run_dir.glob("logs/version_0/images/val_image_true_predicted_class_step*.png"))
    assert previews and "sample 1: true " in Image.open(previews[0]).text["Description"]


@pytest.mark.slow
def test_segmentation_run_reports_dice_and_hd95(tmp_path: Path) -> None:
    result = finetune(build_config([*tiny(tmp_path), "method=finetune", "method.task=segmentation", "trainer.max_steps=2"]))
    assert {"test/dice", "test/dice_class1", "test/hd95_class1"} <= set(result.metrics)
    assert 0 <= result.metrics["test/dice"] <= 1
    previews = list(result.run_dir.glob("logs/version_0/images/val_image_predicted_true_mask_step*.png"))
    assert previews and "rows from top: image, predicted, true" in Image.open(previews[0]).text["Description"]


@pytest.mark.slow
def test_linear_probe_leaves_the_encoder_unchanged(tmp_path: Path, genesis_entry: str) -> None:
    args = [*tiny(tmp_path), "method=finetune", f"method.init=zoo:{genesis_entry}", "method.mode=linear", "trainer.max_steps=3"]
    result = finetune(build_config(args))
    trained = torch.load(result.best_checkpoint or next(result.run_dir.glob("checkpoints/*.ckpt")), weights_only=True)
    encoder = {k[len("network.encoder.") :]: v for k, v in trained["state_dict"].items() if k.startswith("network.encoder.")}
    assert torch.equal(torch.cat([v.float().flatten() for v in encoder.values()]), _flat(zoo.load(genesis_entry)))


def test_a_missing_zoo_entry_names_the_make_pretrain_that_creates_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no entry 'chen_phantom_ct' in the zoo store .*: make pretrain METHOD=chen DATA=phantom_ct$"):
        build_finetune(*tiny(tmp_path), "method.init=zoo:chen_phantom_ct")
    with pytest.raises(ConfigError, match=r": make pretrain METHOD=<method> DATA=<data> zoo.name=mine zoo.store=.*other$"):
        build_finetune(*tiny(tmp_path), "method.init=zoo:mine", f"zoo.store={tmp_path / 'other'}")


def test_bad_init_and_mismatched_entries_fail_with_what_to_do(tmp_path: Path, genesis_entry: str) -> None:
    with pytest.raises(ConfigError, match="neither 'scratch' nor 'zoo:NAME'"):
        build_finetune(*tiny(tmp_path), "method.init=simclr")
    with pytest.raises(ConfigError, match="trained with spatial_dims=3 but the data has 2"):
        build_finetune(*tiny(tmp_path), "data.spatial_dims=2", "data.patch_size=[32,32]", f"method.init=zoo:{genesis_entry}")
    with pytest.raises(ConfigError, match="linear is a classification protocol"):
        build_method("finetune", *tiny(tmp_path), "method.task=segmentation", "method.mode=linear")


@pytest.mark.slow
def test_brain_segmentation_reports_dice_and_hd95_per_brats_region(tmp_path: Path) -> None:
    args = ["method=finetune", "method.task=segmentation", "data=phantom_brain_mri", "data.num_patients=6", "data.batch_size=2",
            "network.features=[4,8,16]", "method.seg_classes=4", "method.seg_metrics=brats_regions", "trainer.max_steps=2",
            "trainer.enable_progress_bar=false", f"output_dir={tmp_path}"]
    metrics = finetune(build_config(args)).metrics
    assert {f"test/{m}_{r}" for m in ("dice", "hd95") for r in ("wt", "tc", "et")} <= set(metrics)
    assert 0 <= metrics["test/dice"] <= 1 and not any(k.startswith("test/dice_class") for k in metrics)
    two_classes = [arg for arg in args[1:] if arg != "method.seg_classes=4"]
    with pytest.raises(ConfigError, match="seg_classes=4"):
        build_method("finetune", *two_classes)


def _skewed_logits() -> tuple[torch.Tensor, torch.Tensor]:
    """Two-class logits that rank every positive above every negative while argmax calls them all negative."""
    target = torch.tensor([0, 0, 0, 1, 1, 1])
    positive = torch.tensor([0.05, 0.10, 0.15, 0.30, 0.35, 0.40])
    return torch.stack([torch.zeros(6), torch.logit(positive)], dim=1), target


def _validated(tmp_path: Path, target: torch.Tensor) -> tuple[FinetuneMethod, dict[str, object], dict[str, torch.Tensor]]:
    """A fine-tuning method whose network answers the skewed logits, after one validation on ``target``; what it
    logged (no trainer: recorded as logged) and the batch."""
    method, _ = build_finetune(*tiny(tmp_path))
    logged: dict[str, object] = {}
    method.log = lambda name, value, **_: logged.__setitem__(name, value)
    logits, _ = _skewed_logits()
    method.forward = lambda images: logits
    batch = {"image": torch.zeros(6, 1, 32, 32, 16), "label": target}
    method.validation_step(batch, 0)
    method.on_validation_epoch_end()
    return method, logged, batch


def test_the_test_split_is_scored_at_the_operating_point_chosen_on_validation(tmp_path: Path) -> None:
    method, logged, batch = _validated(tmp_path, _skewed_logits()[1])
    method.test_step(batch, 0)
    method.on_test_epoch_end()
    assert sorted(float(v) for k, v in logged.items() if k.startswith("val/predicted_")) == [0.0, 6.0], "argmax: one class"
    assert 0.15 < logged["val/threshold"] < 0.30 and logged["test/threshold"] == logged["val/threshold"]
    assert logged["test/acc"] == 1.0 and logged["test/auc"] == pytest.approx(logged["val/auc"]) == 1.0
    assert sorted(float(v) for k, v in logged.items() if k.startswith("test/predicted_")) == [3.0, 3.0]


def test_a_validation_split_of_one_class_keeps_the_argmax_for_the_test(tmp_path: Path) -> None:
    method, logged, _ = _validated(tmp_path, torch.zeros(6, dtype=torch.long))
    assert method.threshold is None and "val/threshold" not in logged


def test_argmax_threshold_and_a_chance_level_validation_keep_the_argmax(tmp_path: Path) -> None:
    method, _ = build_finetune(*tiny(tmp_path), "method.threshold=argmax")
    assert method.roc is None
    assert youden_threshold(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.6, 0.2])) is None
    logits, _ = _skewed_logits()
    shifted = operating_point_logits(logits, 0.25)
    assert shifted.argmax(dim=1).tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(shifted.softmax(dim=1)[:, 1].argsort(), logits.softmax(dim=1)[:, 1].argsort())


@pytest.mark.slow
def test_score_rescores_the_kept_checkpoint_of_a_finished_run_without_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = [*tiny(tmp_path), "trainer.max_steps=2", "data.test_fraction=0.25", "data.val_fraction=0.25"]
    first = finetune(build_config(["method=finetune", *common, "method.threshold=argmax"]))
    before = json.loads((first.run_dir / TEST_METRICS).read_text())
    weights = first.best_checkpoint.read_bytes()
    assert main(["score", f"resume={first.run_dir}", "method.threshold=validation"]) == 0
    after = json.loads((first.run_dir / TEST_METRICS).read_text())
    assert after["metrics"]["test/auc"] == pytest.approx(before["metrics"]["test/auc"]), "the same checkpoint, the same ranking"
    assert after["checkpoint"] == before["checkpoint"] and first.best_checkpoint.read_bytes() == weights, "nothing trained"
    assert "method.threshold=validation" not in str(before) and "threshold: validation" in (first.run_dir / "config.yaml").read_text()
    assert f"scoring run {first.run_dir}" in capsys.readouterr().out


def test_score_needs_a_finished_fine_tuning_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["score", *tiny(tmp_path)]) == 2
    assert "score needs the fine-tuning run to score: resume=RUN_FOLDER" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["finetune", "cpcseg"])
def test_without_background_dice_a_missed_small_lesion_costs_the_whole_dice_term(method: str) -> None:
    task = ["method.task=segmentation"] if method == "finetune" else ["method.seg_classes=2", "method.seg_metrics=classes"]
    mask = torch.zeros(1, 1, 16, 16, 8, dtype=torch.long)
    mask[..., 6:9, 6:9, 3:5] = 1
    background_only = torch.stack([torch.full(mask.shape[2:], 20.0), torch.full(mask.shape[2:], -20.0)])[None]
    losses = {}
    for counted in (True, False):
        built = build_method(method, "network.features=[4,8,16]", "data=phantom_ct", "data.patch_size=[16,16,8]", *task,
                             f"method.dice_background={str(counted).lower()}")
        loss = built.loss if method == "finetune" else built.seg_loss
        losses[counted] = float(loss(background_only, mask))
    # the same cross-entropy in both; the lesion's Dice loss (1) counts whole alone, averaged with the background's
    # (~0: 2030 of 2048 voxels right) it counts half
    assert losses[False] - losses[True] == pytest.approx(0.5, abs=0.01)
