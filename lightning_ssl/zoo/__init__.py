"""The model zoo: publish pretrained encoders/decoders, then ``zoo.load(name)`` them anywhere.

>>> from lightning_ssl import zoo
>>> encoder = zoo.load("genesis_chest_ct")            # newest version; "name@v1" selects one
>>> report = zoo.load_into(my_net.encoder, "genesis_chest_ct")
>>> zoo.push("genesis_chest_ct", "hf://me/genesis")  # then zoo.load("hf://me/genesis") anywhere
"""

import importlib
from typing import Any

from lightning_ssl.zoo.builtin import BUILTIN, BuiltinEntry, register_builtin
from lightning_ssl.zoo.card import info
from lightning_ssl.zoo.catalog import list_entries
from lightning_ssl.zoo.converters import CONVERTERS
from lightning_ssl.zoo.downstream import record_downstream
from lightning_ssl.zoo.errors import (
    ZooChecksumError,
    ZooDownloadError,
    ZooError,
    ZooMetadataError,
    ZooMismatchError,
    ZooNotFoundError,
)
from lightning_ssl.zoo.store import store_root, versions

list = list_entries

# What needs torch (loading, publishing, exporting) is imported on first use, so that reading the catalog and the
# store (`zoo list`, `zoo info`) stays quick.
_ON_FIRST_USE = {
    "export": "lightning_ssl.zoo.exporting",
    "fetch_builtin": "lightning_ssl.zoo.fetch",
    "import_builtin": "lightning_ssl.zoo.fetch",
    "LoadReport": "lightning_ssl.zoo.loading",
    "load": "lightning_ssl.zoo.loading",
    "load_into": "lightning_ssl.zoo.loading",
    "metadata": "lightning_ssl.zoo.loading",
    "publish": "lightning_ssl.zoo.publishing",
    "publish_network": "lightning_ssl.zoo.publishing",
    "push": "lightning_ssl.zoo.pushing",
}


def __getattr__(name: str) -> Any:
    """The functions of :data:`_ON_FIRST_USE`, imported when first asked for."""
    if name not in _ON_FIRST_USE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "metadata",
    "BUILTIN",
    "BuiltinEntry",
    "CONVERTERS",
    "LoadReport",
    "ZooChecksumError",
    "ZooDownloadError",
    "ZooError",
    "ZooMetadataError",
    "ZooMismatchError",
    "ZooNotFoundError",
    "export",
    "fetch_builtin",
    "import_builtin",
    "info",
    "list",
    "list_entries",
    "load",
    "load_into",
    "publish",
    "publish_network",
    "push",
    "record_downstream",
    "register_builtin",
    "store_root",
    "versions",
]
