"""Watching a search while it runs: one callback per round, installed by whoever runs the search.

The server streams each round's leading beam to its client while the search goes on; a
batch run installs nothing and pays one context-variable read per round. The observer is
scoped to the calling thread's context (`contextvars`), so concurrent searches in a
server's thread pool each see only their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from ttscale.search.records import Beam

# (round index, per problem of the search: that round's scored children, empty once it is done)
RoundObserver = Callable[[int, Sequence[Sequence[Beam]]], None]

_observer: ContextVar[RoundObserver | None] = ContextVar("ttscale_round_observer", default=None)


@contextmanager
def observe_rounds(observer: RoundObserver | None) -> Iterator[None]:
    """`observer` sees every round of the searches run inside the block (None: nothing is watched)."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def report_round(round_: int, children: Sequence[Sequence[Beam]]) -> None:
    observer = _observer.get()
    if observer is not None:
        observer(round_, children)
