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
