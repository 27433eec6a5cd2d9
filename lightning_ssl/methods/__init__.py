"""Methods, registered by the name used in configs and on the command line (``method=NAME``)."""

from __future__ import annotations

from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.methods.genesis import GenesisMethod

METHODS: dict[str, type[BaseMethod]] = {"genesis": GenesisMethod}

__all__ = ["METHODS", "BaseMethod", "GenesisMethod"]
