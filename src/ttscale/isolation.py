"""A batch that fails is run again item by item, so one bad item fails alone and its neighbours succeed.

The runner searches problems in batches and the server merges concurrent searches' backend calls into
one: in both, one item that breaks the call (a prompt over the model's context, a verifier that cannot
read it) would otherwise fail every other item batched with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_isolating(
    run: Callable[[list[T]], list[R]],
    items: Sequence[T],
    failed: Callable[[T, BaseException], R],
    catch: type[BaseException] = Exception,
) -> list[R]:
    """`run(items)`, one result per item; when it raises `catch`, each item is run alone, and an item that
    raises alone gets `failed(item, error)` (called inside the except block, so a traceback is at hand)."""
    try:
        return run(list(items))
    except catch as e:
        if len(items) == 1:
            return [failed(items[0], e)]
    return [r for item in items for r in run_isolating(run, [item], failed, catch)]
