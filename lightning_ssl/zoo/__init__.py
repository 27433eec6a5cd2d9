"""The model zoo: publish pretrained encoders/decoders, then ``zoo.load(name)`` them anywhere.

>>> from lightning_ssl import zoo
>>> encoder = zoo.load("genesis_chest_ct")            # newest version; "name@v1" selects one
>>> report = zoo.load_into(my_net.encoder, "genesis_chest_ct")
>>> zoo.push("genesis_chest_ct", "hf://me/genesis")  # then zoo.load("hf://me/genesis") anywhere
"""

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
from lightning_ssl.zoo.export import export
from lightning_ssl.zoo.fetch import fetch_builtin, import_builtin
from lightning_ssl.zoo.load import LoadReport, load, load_into, metadata
from lightning_ssl.zoo.publish import publish, publish_network
from lightning_ssl.zoo.push import push
from lightning_ssl.zoo.store import store_root, versions

list = list_entries

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
