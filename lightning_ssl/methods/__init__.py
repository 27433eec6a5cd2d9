"""Methods, registered by the name used in configs and on the command line (``method=NAME``)."""

from __future__ import annotations

from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.methods.byol import BYOLMethod
from lightning_ssl.methods.context_restoration import ContextRestorationMethod
from lightning_ssl.methods.cpcseg import CPCSegMethod
from lightning_ssl.methods.finetune import FinetuneMethod
from lightning_ssl.methods.genesis import GenesisMethod
from lightning_ssl.methods.multimix import MultiMixMethod
from lightning_ssl.methods.simclr import SimCLRMethod

METHODS: dict[str, type[BaseMethod]] = {
    "genesis": GenesisMethod,
    "chen": ContextRestorationMethod,
    "simclr": SimCLRMethod,
    "byol": BYOLMethod,
    "finetune": FinetuneMethod,
    "cpcseg": CPCSegMethod,
    "multimix": MultiMixMethod,
}

__all__ = ["METHODS", "BYOLMethod", "BaseMethod", "CPCSegMethod", "ContextRestorationMethod", "FinetuneMethod", "GenesisMethod", "MultiMixMethod", "SimCLRMethod"]
