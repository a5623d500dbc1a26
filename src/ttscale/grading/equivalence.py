"""Is a predicted answer equal to the gold one? Strings first, math-verify in a pool for the rest."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ttscale.grading.normalize import analyse, quick_equiv, sympy_forms
from ttscale.grading.pool import TIMED_OUT, get_pool

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
# Decided pairs, keyed by normalised strings. Bounded: a long run sees millions of pairs.
_MAX_CACHED = 1 << 17
_decided: dict[tuple[str, str], bool] = {}
# Answers whose parse alone overran its deadline (9^9^9^9^9, 100000!): unequal to everything
# else from then on, so one such sample costs one timeout, not one per comparison.
_unparsable: dict[str, float] = {}  # answer -> the timeout it overran; a longer one tries again
_parsed: set[str] = set()
_timeouts: dict[str, int] = {}
# A parsable answer that overran in this many comparisons (`(10^{10^{10}})!` against anything)
# joins `_unparsable` too; one overrun could be its partner's fault.
_TIMEOUTS_TO_GIVE_UP = 2


def _remember(pair: tuple[str, str], equal: bool) -> None:
    if len(_decided) >= _MAX_CACHED:
        _decided.clear()
    _decided[pair] = equal


def is_equiv_many(pairs: Sequence[tuple[str, str]], timeout: float = DEFAULT_TIMEOUT) -> list[bool]:
    """is_equiv over many (gold, pred) pairs; the sympy ones run in parallel, each bounded by `timeout`.

    A pair that times out or errors counts as unequal (logged); its verdict is not
    cached, so a later call with a longer timeout can still decide it.
    """
    results: list[bool | None] = [None] * len(pairs)
    hard: dict[tuple[str, str], list[int]] = {}
    for i, (gold, pred) in enumerate(pairs):
        a, b = analyse(gold), analyse(pred)
        quick = quick_equiv(a, b)
        forms = sympy_forms(a, b)
        if quick is None:
            quick = _decided.get(forms)
        if quick is not None:
            results[i] = quick
        else:
            hard.setdefault(forms, []).append(i)
    if hard:
        _screen_parses({s for pair in hard for s in pair}, timeout)
        for pair in [p for p in hard if _given_up(p[0], timeout) or _given_up(p[1], timeout)]:
            for i in hard.pop(pair):
                results[i] = False
        todo = list(hard)
        for pair, verdict in zip(todo, get_pool().verify_many(todo, timeout)):
            if isinstance(verdict, bool):
                _remember(pair, verdict)
            elif verdict == TIMED_OUT:
                _count_timeout(pair, timeout)
            else:
                logger.info("grading failed (%s) on gold=%.80r pred=%.80r; counted unequal", verdict, *pair)
            for i in hard[pair]:
                results[i] = verdict is True
    return [bool(r) for r in results]


def _given_up(answer: str, timeout: float) -> bool:
    return _unparsable.get(answer, -1.0) >= timeout


def _count_timeout(pair: tuple[str, str], timeout: float) -> None:
    if len(_timeouts) >= _MAX_CACHED:
        _timeouts.clear()
    for answer in pair:
        _timeouts[answer] = _timeouts.get(answer, 0) + 1
        if _timeouts[answer] >= _TIMEOUTS_TO_GIVE_UP:
            _unparsable[answer] = timeout


def _screen_parses(answers: set[str], timeout: float) -> None:
    """Parse each new answer once under the deadline; remember those that overrun."""
    pool = get_pool()
    fresh = sorted(a for a in answers if not _given_up(a, timeout) and a not in _parsed)
    for answer, verdict in zip(fresh, pool.parse_many(fresh, timeout)):
        if verdict == TIMED_OUT:
            _unparsable[answer] = timeout
        elif len(_parsed) < _MAX_CACHED:
            _parsed.add(answer)


def is_equiv(gold: str, pred: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether `pred` is mathematically equal to `gold` (both already-extracted answers).

    Not symmetric, like math-verify: `gold` decides how an assignment or an
    interval is read. A comparison that runs past `timeout` seconds is unequal.
    """
    return is_equiv_many([(gold, pred)], timeout)[0]
