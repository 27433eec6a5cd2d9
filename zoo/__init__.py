"""The model zoo: publish pretrained encoders/decoders, then ``zoo.load(name)`` them anywhere.

>>> import zoo
>>> encoder = zoo.load("genesis_chest_ct")            # newest version; "name@v1" selects one
>>> report = zoo.load_into(my_net.encoder, "genesis_chest_ct")
"""

from zoo.builtin import BUILTIN, BuiltinEntry, register_builtin
from zoo.card import info
from zoo.catalog import list_entries
from zoo.download import download
from zoo.errors import ZooChecksumError, ZooDownloadError, ZooError, ZooNotFoundError
from zoo.fetch import fetch_builtin
from zoo.load import LoadReport, load, load_into, metadata
from zoo.publish import publish, publish_network
from zoo.store import store_root, versions

list = list_entries

__all__ = [
    "metadata",
    "BUILTIN",
    "BuiltinEntry",
    "LoadReport",
    "ZooChecksumError",
    "ZooDownloadError",
    "ZooError",
    "ZooNotFoundError",
    "download",
    "fetch_builtin",
    "info",
    "list",
    "list_entries",
    "load",
    "load_into",
    "publish",
    "publish_network",
    "register_builtin",
    "store_root",
    "versions",
]
