"""What the networks built from MONAI share: their ``network.*`` options checked against their config, MONAI's
refusals as one-line errors, and the check that a network can take the data's patches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from lightning_ssl.errors import ConfigError, one_line
from lightning_ssl.schema import Choice

T = TypeVar("T")


def config_options(network: str, config_class: type, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` over the defaults of ``config_class`` (its ``name`` left out, choices as plain strings); a ConfigError
    for an option the config does not have."""
    defaults = {key: value for key, value in asdict(config_class()).items() if key != "name"}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"network={network} has no option {unknown[0]!r}; its options: {', '.join(sorted(defaults))}")
    return {key: str(value) if isinstance(value, Choice) else value for key, value in {**defaults, **given}.items()}


def build_monai(network: str, factory: Callable[..., T], **kwargs: Any) -> T:
    """``factory(**kwargs)``; a ValueError from MONAI (a setting it refuses) becomes a one-line ConfigError."""
    try:
        return factory(**kwargs)
    except ValueError as error:
        raise ConfigError(f"network={network}: {one_line(error)} (check the network.* options)") from None


def require_multiple(network: str, patch_size: Sequence[int], multiple: int, why: str) -> None:
    """Raise a ConfigError naming ``data.patch_size`` and a size that fits unless every axis is a multiple of ``multiple``."""
    sizes = [int(size) for size in patch_size]
    if all(size % multiple == 0 for size in sizes):
        return
    fitting = ",".join(str(max(multiple, round(size / multiple) * multiple)) for size in sizes)
    given = ",".join(map(str, sizes))
    raise ConfigError(
        f"network={network} needs data.patch_size divisible by {multiple} along every axis ({why}); "
        f"got [{given}]: use e.g. data.patch_size=[{fitting}]"
    )
