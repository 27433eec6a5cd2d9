"""Built-in entries: one card per entry in the catalog (the repository's top-level ``zoo/`` folder, shipped as
``lightning_ssl/zoo/catalog``), each naming where its official file comes from and the converter that makes it a
network. Adding a built-in entry is adding a card; :func:`register_builtin` adds one from code."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lightning_ssl.errors import one_line
from lightning_ssl.io.hub import HubFile
from lightning_ssl.zoo.converters import CONVERTERS, Converter
from lightning_ssl.zoo.errors import ZooError
from lightning_ssl.zoo.store import architecture_of, validate_name

if TYPE_CHECKING:
    from torch import nn

CATALOG = "catalog"
CARD_SUFFIX = ".yaml"
_SOURCE_KEYS = ("hub", "url", "file", "sha256", "converter", "how_to_get")
_HUB_KEYS = ("repo", "file", "revision")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BuiltinEntry:
    """Where a built-in entry's weights come from and how they become a network.

    ``hub`` (a Hugging Face Hub file at a pinned revision) is fetched with huggingface_hub; otherwise ``url``
    (HTTP(S) or ``file://``). ``converter`` (a callable, or the name of one in ``CONVERTERS``) turns the file into
    the network that ``metadata["architecture"]`` describes. ``sha256`` pins the file; when None, the checksum of
    the first file that converts is recorded and every later file must match it (trust on first use).
    """

    url: str
    filename: str
    sha256: str | None
    converter: Converter | str
    metadata: dict[str, Any] = field(default_factory=dict)
    how_to_get: str = ""
    hub: HubFile | None = None
    card: str | None = None

    def convert(self, path: Path) -> nn.Module:
        """The network held by the official file at ``path``."""
        converter = CONVERTERS.get(self.converter) if isinstance(self.converter, str) else self.converter
        return converter(path, self.metadata)

    def source(self) -> dict[str, Any]:
        """Where the file comes from, as recorded in metadata and shown on model cards."""
        record: dict[str, Any] = {"url": self.url, "file": self.filename, "sha256": self.sha256}
        if self.hub is not None:
            record["hub"] = {"repo": self.hub.repo, "file": self.hub.filename, "revision": self.hub.revision}
        return record


BUILTIN: dict[str, BuiltinEntry] = {}


def register_builtin(name: str, entry: BuiltinEntry, overwrite: bool = False) -> None:
    """Make ``name`` a built-in entry (fetched and published into the store on first load)."""
    validate_name(name)
    if name in BUILTIN and not overwrite:
        raise ValueError(f"built-in zoo entry {name!r} is already registered (pass overwrite=True to replace it)")
    BUILTIN[name] = entry


def catalog_cards() -> list[Traversable]:
    """The catalog's card files, by name."""
    folder = files("lightning_ssl.zoo") / CATALOG
    return sorted((card for card in folder.iterdir() if card.name.endswith(CARD_SUFFIX)), key=lambda card: card.name)


def entry_from_card(text: str, where: str) -> BuiltinEntry:
    """The built-in entry a card's YAML text describes; ZooError naming ``where`` and the key when it is malformed."""
    try:
        card = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ZooError(f"catalog card {where} is not valid YAML: {one_line(error)}") from None
    if not isinstance(card, dict):
        raise ZooError(f"catalog card {where} must be a mapping of keys (source, architecture, input, ...)")
    source = _mapping(card.get("source"), "source", where, _SOURCE_KEYS)
    converter = source.get("converter")
    if converter not in CONVERTERS:
        raise ZooError(f"catalog card {where}: source.converter {converter!r} is not one of {', '.join(CONVERTERS.names())}")
    sha256 = source.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise ZooError(f"catalog card {where}: source.sha256 must be 64 lowercase hex digits or null")
    metadata = {key: value for key, value in card.items() if key != "source"}
    try:
        architecture_of(metadata)
    except ValueError as error:
        raise ZooError(f"catalog card {where}: {error}") from None
    hub, url, filename = _location(source, where)
    return BuiltinEntry(url, filename, sha256, converter, metadata, str(source.get("how_to_get") or ""), hub, where)


def load_catalog() -> None:
    """Register every card of the catalog as a built-in entry named after its file."""
    for card in catalog_cards():
        name = card.name[: -len(CARD_SUFFIX)]
        try:
            validate_name(name)
        except ValueError as error:
            raise ZooError(f"catalog card {card}: {error}") from None
        register_builtin(name, entry_from_card(card.read_text(encoding="utf-8"), str(card)), overwrite=True)


def _location(source: Mapping[str, Any], where: str) -> tuple[HubFile | None, str, str]:
    """The Hub file (if any), URL and file name of a card's ``source``."""
    if source.get("hub") is not None:
        hub = _mapping(source["hub"], "source.hub", where, _HUB_KEYS)
        missing = [key for key in _HUB_KEYS if not isinstance(hub.get(key), str) or not hub[key]]
        if missing:
            raise ZooError(f"catalog card {where}: source.hub needs {', '.join(missing)} (revision pins the file)")
        file = HubFile(hub["repo"], hub["file"], hub["revision"])
        return file, file.url, file.filename
    url = source.get("url")
    if not isinstance(url, str) or not url:
        raise ZooError(f"catalog card {where}: source needs hub (repo, file, revision) or url")
    return None, url, str(source.get("file") or url.rsplit("/", 1)[-1])


def _mapping(value: Any, key: str, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    """``value`` if it is a mapping with only ``known`` keys; ZooError otherwise."""
    if not isinstance(value, dict):
        raise ZooError(f"catalog card {where}: {key} must be a mapping with keys {', '.join(known)}")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ZooError(f"catalog card {where}: {key} has unknown keys {unknown} (known: {', '.join(known)})")
    return value


load_catalog()
