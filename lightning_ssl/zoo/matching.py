"""Pairing the keys of zoo weights with the keys of another network's state dict.

Networks that hold the same layers often name them under different prefixes (lightning_ssl's ResNet encoder keeps
MONAI's ResNet under ``resnet.``; a user's model may keep an encoder under ``backbone.``). torch's
``load_state_dict`` matches exact names only, so the prefixes are found here: the pair of prefixes, one shared by
many zoo keys and one shared by many module keys, under which the most names coincide.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

_SHARED = 0.5  # a prefix is a candidate when at least this share of the keys start with it
_DEPTH = 3  # prefixes of up to this many dotted components


@dataclass(frozen=True)
class KeyMatch:
    """Module key -> zoo key pairs under the best prefixes, and the name matches whose shapes differ."""

    pairs: dict[str, str]
    misshapen: dict[str, str]
    zoo_prefix: str
    module_prefix: str


def match_keys(weights: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> KeyMatch:
    """The prefixes (``zoo_prefix`` on the zoo side, ``module_prefix`` on the module side) under which the most key
    names of ``weights`` and ``own`` coincide, and the resulting pairs; ties prefer the shortest prefixes."""
    best: KeyMatch | None = None
    for zoo_prefix in _prefixes(weights):
        for module_prefix in _prefixes(own):
            match = _match_under(weights, own, zoo_prefix, module_prefix)
            named = len(match.pairs) + len(match.misshapen)
            if best is None or named > len(best.pairs) + len(best.misshapen):
                best = match
    assert best is not None
    return best


def _match_under(weights: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], zoo_prefix: str, module_prefix: str) -> KeyMatch:
    """Pairs of module keys ``module_prefix + rest`` with zoo keys ``zoo_prefix + rest``."""
    pairs: dict[str, str] = {}
    misshapen: dict[str, str] = {}
    for key, value in own.items():
        if not key.startswith(module_prefix):
            continue
        source = zoo_prefix + key[len(module_prefix) :]
        if source in weights:
            (pairs if tuple(weights[source].shape) == tuple(value.shape) else misshapen)[key] = source
    return KeyMatch(pairs, misshapen, zoo_prefix, module_prefix)


def _prefixes(keys: Iterable[str]) -> list[str]:
    """``""`` and the dotted prefixes (up to ``_DEPTH`` components) that at least half of ``keys`` start with,
    shortest first."""
    keys = list(keys)
    counts: Counter[str] = Counter()
    for key in keys:
        parts = key.split(".")[:-1]
        counts.update(".".join(parts[:depth]) + "." for depth in range(1, min(len(parts), _DEPTH) + 1))
    shared = [prefix for prefix, count in counts.items() if count >= _SHARED * len(keys)]
    return ["", *sorted(shared, key=len)]
