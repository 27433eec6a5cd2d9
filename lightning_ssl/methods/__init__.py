"""Methods, each registered by the name used in configs and on the command line (``method=NAME``) where it is defined."""

from __future__ import annotations

from lightning_ssl.methods import byol, context_restoration, cpcseg, finetune, genesis, multimix, simclr
from lightning_ssl.methods.base import BaseMethod
from lightning_ssl.registry import METHODS

__all__ = ["METHODS", "BaseMethod", "byol", "context_restoration", "cpcseg", "finetune", "genesis", "multimix", "simclr"]
