"""Optimisers and learning-rate schedules from ``optim`` in the config."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from lightning_ssl.errors import ConfigError


def check(optim: Any) -> None:
    """ConfigError for optimiser settings no optimiser takes (checked when the method is built, before training)."""
    problems = [
        f"optim.{key}={optim[key]} must be {rule}"
        for key, rule, ok in (
            ("lr", "> 0", optim.lr > 0),
            ("weight_decay", ">= 0", optim.weight_decay >= 0),
            ("momentum", "in [0, 1)", 0 <= optim.momentum < 1),
            ("warmup_steps", ">= 0", optim.warmup_steps >= 0),
            ("step_size", ">= 1", optim.step_size >= 1),
            ("encoder_lr_scale", ">= 0", optim.encoder_lr_scale >= 0),
        )
        if not ok
    ]
    if problems:
        raise ConfigError("; ".join(problems))


def optimizer(groups: list[dict[str, Any]], optim: Any) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over parameter ``groups`` at ``optim.lr`` and ``optim.weight_decay``."""
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
    cls = torch.optim.Adam if optim.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=optim.lr, weight_decay=optim.weight_decay)


def lr_factor(optim: Any, total_steps: int) -> Callable[[int], float]:
    """The learning rate at step ``s`` as a factor of the base rate: ``optim.warmup_steps`` of linear warm-up, then
    constant (``none``), a cosine decay to 0 at ``total_steps`` (``cosine``) or a decay by ``gamma`` every
    ``step_size`` steps (``step``).

    A pure function of the step (a ``LambdaLR`` keeps only the step in checkpoints), so a resumed run continues the
    same schedule and an extended run stretches the cosine to its new length.
    """
    warmup, kind = int(optim.warmup_steps), str(optim.scheduler)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        after = step - warmup
        if kind == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(after / max(1, total_steps - warmup), 1.0)))
        if kind == "step":
            return optim.gamma ** (after // optim.step_size)
        return 1.0

    return factor
