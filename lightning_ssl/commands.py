"""The commands that run a config (pretrain, finetune): their defaults and runner, shared by the CLI and sweeps.

Importing this module is cheap; a command's runner (and Lightning with it) is imported when the command runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Command:
    """A command that builds a config from overrides and runs it (``trains``: a resumed run needs steps left)."""

    name: str
    summary: str
    defaults: dict[str, str] = field(default_factory=dict)
    runner: str = ""
    trains: bool = True

    def run(self, cfg: Any, resume: Any = None) -> Any:
        """Run ``cfg`` (continuing ``resume`` when given); returns the runner's result."""
        module, function = self.runner.rsplit(":", 1)
        runner: Callable[..., Any] = getattr(importlib.import_module(module), function)
        return runner(cfg, resume)

    def build(self, overrides: list[str]) -> Any:
        """The resolved config of ``overrides`` with this command's defaults."""
        from lightning_ssl.config import build_config

        return build_config(overrides, self.defaults)


COMMANDS: dict[str, Command] = {
    "pretrain": Command(
        "pretrain", "pretrain a method on a dataset, then publish its encoder/decoder to the zoo", {}, "lightning_ssl.train:pretrain"
    ),
    "finetune": Command(
        "finetune",
        "train a task network from scratch or a zoo entry on a label budget and score it on the test split",
        {"method": "finetune"},
        "lightning_ssl.train:finetune",
    ),
    "score": Command(
        "score",
        "score a finished fine-tuning run's kept checkpoint again (resume=RUN_FOLDER), e.g. at another method.threshold",
        {"method": "finetune"},
        "lightning_ssl.train:score",
        trains=False,
    ),
}
