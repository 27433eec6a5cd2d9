"""Name -> class registries that a class joins where it is defined: ``@METHODS.register("genesis")``.

The registries are filled when their packages are imported (``lightning_ssl.methods``,
``lightning_ssl.data``, ``lightning_ssl.models``); this module imports nothing from the project.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name no class is registered under; the message names the close ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Classes (or functions) by the name used in configs and on the command line."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its target under ``name``; a name can be taken once."""

        def add(target: T) -> T:
            if name in self._entries and self._entries[name] is not target:
                raise ValueError(f"{self.kind} {name!r} is registered twice: {self._entries[name]!r} and {target!r}")
            self._entries[name] = target
            return target

        return add

    def get(self, name: str) -> T:
        """The entry registered under ``name``; UnknownNameError listing the known names and the close ones."""
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), list(self._entries), n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}{hint}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, sorted by name."""
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


METHODS: Registry[type] = Registry("method")
DATASETS: Registry[type] = Registry("data")
NETWORKS: Registry[type] = Registry("network")
