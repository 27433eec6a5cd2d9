"""Self-supervised pretraining for medical imaging on PyTorch Lightning, and a zoo of pretrained encoders/decoders.

>>> from lightning_ssl import zoo
>>> encoder = zoo.load("genesis_chest_ct")
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lightning-ssl")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
