"""Listing entries and model cards."""

from __future__ import annotations

from pathlib import Path

import pytest
from zoo_helpers import small_unet, unet_metadata

from lightning_ssl import zoo
from lightning_ssl.io.checksum import sha256_file

CARD_METADATA = {
    "method": "context_restoration",
    "data": "toy ultrasound",
    "label_budget": "none",
    "input": {"spatial_dims": 2, "channels": 1, "channel_names": ["US"], "patch_size": [16, 16], "spacing": [0.5, 0.5]},
    "metrics": {"val_loss": 0.125},
    "licence": "CC-BY-4.0",
    "citation": "Chen et al., MedIA 2019",
    "output_activation": "none",
    "usage_notes": "Restores swapped patches; fine-tune before segmenting.",
}


def test_list_gives_newest_version_per_name_and_builtins(store: Path) -> None:
    zoo.publish_network("beta", small_unet(), unet_metadata(method="simclr", data="chex"), store=store)
    zoo.publish_network("alpha", small_unet(), unet_metadata(method="byol", data="chex"), store=store)
    zoo.publish_network("alpha", small_unet(), unet_metadata(method="byol", data="chex v2"), store=store)
    (store / "alpha" / ".tmp-crashed").mkdir()
    rows = zoo.list(store=store, include_builtin=True)
    by_name = {row["name"]: row for row in rows}
    assert [row["name"] for row in rows] == sorted(by_name)
    assert by_name["alpha"]["version"] == 2 and by_name["alpha"]["data"] == "chex v2"
    assert by_name["beta"] == {
        "name": "beta",
        "version": 1,
        "method": "simclr",
        "data": "chex",
        "architecture": "unet",
        "created": by_name["beta"]["created"],
        "source": "store",
    }
    assert by_name["genesis_chest_ct"]["version"] is None and by_name["genesis_chest_ct"]["method"] == "genesis"
    assert [row["name"] for row in zoo.list(store=store)] == ["alpha", "beta"]


def test_info_is_a_model_card(store: Path) -> None:
    directory = zoo.publish_network("toy_us", small_unet(), unet_metadata(**CARD_METADATA), store=store)
    card = zoo.info("toy_us", store=store)
    assert card.startswith("# toy_us@v1\n")
    for text in (
        "context_restoration",
        "toy ultrasound",
        "build_network('unet', spatial_dims=2, in_channels=1, out_channels=2, features=[4, 8, 16])",
        "| channel_names | [\"US\"] |",
        "| spacing | [0.5, 0.5] |",
        'zoo.load("toy_us", part="encoder")',
        "| val_loss | 0.125 |",
        "CC-BY-4.0",
        "Chen et al., MedIA 2019",
        "## Using these weights\nRestores swapped patches; fine-tune before segmenting.",
    ):
        assert text in card
    for part in ("encoder", "decoder"):
        assert f"| {part}.safetensors |" in card
        assert f"`{sha256_file(directory / f'{part}.safetensors')}`" in card


def test_info_of_a_builtin_needs_no_download(store: Path) -> None:
    card = zoo.info("genesis_chest_ct", store=store)
    assert "Genesis_Chest_CT.pt" in card and "HU clipped to [-1000, 1000]" in card and "Models Genesis" in card
    assert not (store / "_downloads").exists()
    with pytest.raises(zoo.ZooNotFoundError):
        zoo.info("unknown", store=store)


LABEL_EFFICIENCY = {
    "task": "pneumoniamnist classification, fine-tuned 300 steps",
    "metric": "test/auc",
    "report": "results/label_efficiency_pneumoniamnist.md",
    "scores": [
        {"labels": 47, "score": 0.921, "scratch": 0.889, "gain": 0.032, "std": 0.054, "seeds": 3},
        {"labels": 4690, "score": 0.959, "scratch": 0.952, "gain": 0.007, "std": 0.005, "seeds": 3},
    ],
}


def test_card_shows_downstream_results_and_meaningful_metrics_only(store: Path) -> None:
    metrics = {"train/loss": 0.5, "val/loss": 0.25, "lr-Adam/pg1": 0.001, "lr-Adam/pg2": 0.01, "epoch": 3.0, "step": 300.0}
    directory = zoo.publish_network("toy", small_unet(), unet_metadata(metrics=metrics), store=store)
    checksummed = {path.name: path.read_bytes() for path in directory.iterdir()}
    assert "## Downstream results\nnone measured yet" in zoo.info("toy", store=store)
    path = zoo.record_downstream("toy", LABEL_EFFICIENCY, store=store)
    assert path == directory / "downstream.json"
    assert {name: (directory / name).read_bytes() for name in checksummed} == checksummed
    card = zoo.info("toy@v1", store=store)
    assert "pneumoniamnist classification, fine-tuned 300 steps, test/auc (from results/label_efficiency_pneumoniamnist.md):" in card
    assert "| 47 | 0.921 | 0.889 | +0.032 ± 0.054 (3 seeds) |" in card
    assert "| 4690 | 0.959 | 0.952 | +0.007 ± 0.005 (3 seeds) |" in card
    assert "| val/loss | 0.25 |" in card and "| train/loss | 0.5 |" in card
    assert "lr-Adam" not in card and "| epoch |" not in card and "| step |" not in card
    zoo.record_downstream("toy", {**LABEL_EFFICIENCY, "scores": [{"labels": 47, "gain": -0.01}]}, store=store)
    card = zoo.info("toy", store=store)
    assert "| 47 | - | - | -0.010 |" in card and "0.921" not in card
    assert zoo.load("toy", store=store) is not None


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({**LABEL_EFFICIENCY, "report": ""}, "needs 'report' as text"),
        ({**LABEL_EFFICIENCY, "scores": []}, 'needs "scores"'),
        ({**LABEL_EFFICIENCY, "scores": [{"labels": "47", "gain": 0.1}]}, r'scores\[0\] needs "labels"'),
        ({**LABEL_EFFICIENCY, "scores": [{"labels": 47, "gain": 0.1, "std": "big"}]}, r"scores\[0\]: std must be numbers"),
    ],
)
def test_malformed_downstream_results_are_refused(store: Path, result: dict, message: str) -> None:
    zoo.publish_network("toy", small_unet(), unet_metadata(), store=store)
    with pytest.raises(zoo.ZooError, match=message):
        zoo.record_downstream("toy", result, store=store)
    assert not (store / "toy" / "v1" / "downstream.json").exists()
