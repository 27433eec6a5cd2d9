"""The catalog: one YAML card per built-in entry in the repository's top-level zoo/ folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_ssl import zoo
from lightning_ssl.io.hub import HubFile
from lightning_ssl.zoo.builtin import catalog_cards, entry_from_card

REPOSITORY_CATALOG = Path(__file__).resolve().parents[2] / "zoo"

CARD = """
source:
  url: https://example.org/weights/toy.pt
  sha256: null
  converter: models_genesis
  how_to_get: ask the authors
architecture: {name: genesis_unet3d, kwargs: {spatial_dims: 3, in_channels: 1, out_channels: 1}}
input: {spatial_dims: 3, channels: 1}
licence: CC-BY-4.0
"""


def test_every_card_in_the_repository_is_a_builtin_entry() -> None:
    shipped = sorted(path.stem for path in REPOSITORY_CATALOG.glob("*.yaml"))
    assert "genesis_chest_ct" in shipped
    assert sorted(card.name.removesuffix(".yaml") for card in catalog_cards()) == shipped
    assert set(shipped) <= set(zoo.BUILTIN)


def test_genesis_card_pins_the_hub_file_and_names_its_converter() -> None:
    entry = zoo.BUILTIN["genesis_chest_ct"]
    assert entry.hub == HubFile("MrGiovanni/ModelsGenesis", "Genesis_Chest_CT.pt", "main")
    assert entry.url == "https://huggingface.co/MrGiovanni/ModelsGenesis/resolve/main/Genesis_Chest_CT.pt"
    assert entry.converter == "models_genesis" and entry.sha256 is None
    assert entry.metadata["architecture"]["name"] == "genesis_unet3d"
    assert entry.metadata["input"]["patch_size"] == [64, 64, 32]
    assert "Models Genesis" in entry.metadata["citation"] and "MIT" in entry.metadata["licence"]
    assert "source" not in entry.metadata


def test_a_new_card_is_a_new_entry() -> None:
    entry = entry_from_card(CARD, "zoo/toy.yaml")
    assert entry.hub is None and entry.filename == "toy.pt" and entry.how_to_get == "ask the authors"
    assert entry.metadata["licence"] == "CC-BY-4.0"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("converter: models_genesis", "converter: os.system"), "source.converter 'os.system' is not one of"),
        (("sha256: null", "sha256: abc"), "source.sha256 must be 64 lowercase hex digits"),
        (("  url: https://example.org/weights/toy.pt\n", ""), "source needs hub"),
        (("  how_to_get", "  mirror: x\n  how_to_get"), r"source has unknown keys \['mirror'\]"),
        (("architecture: {name: genesis_unet3d,", "architecture: {nom: genesis_unet3d,"), 'needs "architecture"'),
        (("input: {", "input: [{"), "not valid YAML"),
    ],
)
def test_malformed_cards_fail_with_one_line_naming_the_card(change: tuple[str, str], message: str) -> None:
    text = CARD.replace(*change)
    assert text != CARD
    with pytest.raises(zoo.ZooError, match=message) as raised:
        entry_from_card(text, "zoo/toy.yaml")
    assert "zoo/toy.yaml" in str(raised.value) and "\n" not in str(raised.value)


def test_a_hub_source_needs_a_revision() -> None:
    text = CARD.replace("  url: https://example.org/weights/toy.pt\n", "  hub: {repo: a/b, file: w.pt}\n")
    with pytest.raises(zoo.ZooError, match="source.hub needs revision"):
        entry_from_card(text, "zoo/toy.yaml")
