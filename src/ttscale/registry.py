"""A tiny name -> factory registry; each plug-in module registers itself with one line."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from ttscale.errors import unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. Entries may be lazy ('module:attr') so heavy extras import on use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T] | str] = {}

    def register(self, name: str, factory: Callable[..., T] | str | None = None):
        if factory is not None:
            self._entries[name] = factory
            return factory

        def deco(f: Callable[..., T]) -> Callable[..., T]:
            self._entries[name] = f
            return f

        return deco

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., T]:
        if name not in self._entries:
            raise unknown(self.kind, name, self._entries)
        entry = self._entries[name]
        if isinstance(entry, str):
            module, attr = entry.split(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def release(part: object) -> None:
    """Close a part that was built for one run, where it holds something to close (an HTTP backend's or
    verifier's connection pool and threads); a part that holds nothing has no `close`."""
    close = getattr(part, "close", None)
    if close is not None:
        close()
