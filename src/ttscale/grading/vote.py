"""Majority voting and weighted best-of-N over extracted answers.

Answers are grouped by `canonical_key` in one O(n) pass; only the resulting
groups' representatives are compared with `is_equiv`, and only against the
few heaviest groups: comparing every pair of answers is O(N^2) equivalence checks,
which at N=256 cost more than generating the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ttscale.errors import ConfigError
from ttscale.grading.equivalence import DEFAULT_TIMEOUT, is_equiv_many
from ttscale.grading.normalize import analyse, quick_equiv

# Each group is compared against the heaviest `_FIRST_HEADS` groups; the set widens (doubling, up
# to `_MAX_HEADS`) only while the groups left out could still outweigh the winner together.
_FIRST_HEADS = 4
_MAX_HEADS = 32


@dataclass(frozen=True)
class VoteGroup:
    """Answers judged equal: `answer` is the first-seen spelling, `members` index the input."""

    answer: str | None
    members: tuple[int, ...]
    weight: float

    @property
    def count(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class VoteResult:
    """The winning answer and every group, heaviest first (ties: earliest first occurrence)."""

    winner: str | None
    members: tuple[int, ...]
    groups: tuple[VoteGroup, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(g.count for g in self.groups)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(g.weight for g in self.groups)


def _rank(groups: list[VoteGroup]) -> list[VoteGroup]:
    # None never outranks an answer; among answers, heavier first, then first occurrence.
    return sorted(groups, key=lambda g: (g.answer is None, -g.weight, g.members[0]))


def _key_groups(answers: Sequence[str | None], weights: Sequence[float]) -> list[VoteGroup]:
    members: dict[str | None, list[int]] = {}
    spelling: dict[str | None, str | None] = {}
    for i, answer in enumerate(answers):
        key = None if answer is None else analyse(answer).key
        if key not in members:
            members[key] = []
            spelling[key] = answer
        members[key].append(i)
    return [VoteGroup(spelling[key], tuple(idx), float(sum(weights[i] for i in idx))) for key, idx in members.items()]


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        i = parent[i]
    return i


def _merge(ranked: list[VoteGroup], n_heads: int, timeout: float, verdicts: dict[tuple[int, int], bool]) -> list[int]:
    """Union-find parents after comparing every group with the first `n_heads` groups."""
    pairs = [(j, i) for i in range(len(ranked)) for j in range(min(i, n_heads)) if (j, i) not in verdicts]
    hard = []
    for j, i in pairs:
        quick = quick_equiv(analyse(ranked[j].answer), analyse(ranked[i].answer))
        if quick is None:
            hard.append((j, i))
        else:
            verdicts[(j, i)] = quick
    equal = is_equiv_many([(ranked[j].answer, ranked[i].answer) for j, i in hard], timeout)  # type: ignore[misc]
    verdicts.update(zip(hard, equal))
    parent = list(range(len(ranked)))
    for i in range(1, len(ranked)):
        for j in range(min(i, n_heads)):
            if verdicts[(j, i)]:
                parent[i] = _find(parent, j)
                break
    return parent


def _clusters(ranked: list[VoteGroup], parent: list[int]) -> list[VoteGroup]:
    merged: dict[int, list[VoteGroup]] = {}
    for i, group in enumerate(ranked):
        merged.setdefault(_find(parent, i), []).append(group)
    return [
        VoteGroup(ranked[root].answer, tuple(sorted(m for g in parts for m in g.members)), sum(g.weight for g in parts))
        for root, parts in merged.items()
    ]


def _outsiders_could_win(ranked: list[VoteGroup], n_heads: int, clusters: list[VoteGroup]) -> bool:
    """Could groups never compared with each other (beyond the heads) add up to beat the winner?"""
    outside = sum(g.weight for g in ranked[n_heads:])
    return n_heads < len(ranked) and outside >= clusters[0].weight


def solution_key(text: str) -> str:
    """When two candidate solutions are the same one: equal but for trailing whitespace.

    The one rule for every stage that asks (search's duplicate filter, the distinct vote,
    evaluation's curves, SFT and step-label exports). A beam that stopped on its step delimiter
    and its copy that ended without it are one solution; counted twice they double their
    answer's votes. Whitespace inside a text is not ignored: the step delimiter is whitespace
    ("\n\n"), so "a\n\nb" and "a b" are two step structures that a PRM scores differently,
    and a leading space is a different first token.
    """
    return text.rstrip()


def distinct_texts(texts: Sequence[str]) -> tuple[int, ...]:
    """Indices of the first occurrence of each solution, repeats by `solution_key` left out."""
    seen: set[str] = set()
    keep = []
    for i, text in enumerate(texts):
        key = solution_key(text)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return tuple(keep)


def vote(
    answers: Sequence[str | None],
    weights: Sequence[float] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    texts: Sequence[str] | None = None,
) -> VoteResult:
    """Majority vote (no weights) or weighted best-of-N: argmax_a sum_i 1(answer_i = a) w_i.

    None answers form their own group, which wins only when every answer is None.
    Deterministic: ties go to the answer seen first. With `texts` (each answer's
    solution), a solution repeating an earlier one (`solution_key`) casts no vote and is
    in no group's members.
    """
    if weights is not None and len(weights) != len(answers):
        raise ConfigError(f"vote got {len(answers)} answers but {len(weights)} weights; pass one weight per answer")
    if texts is not None and len(texts) != len(answers):
        raise ConfigError(f"vote got {len(answers)} answers but {len(texts)} texts; pass one text per answer")
    if not answers:
        return VoteResult(None, (), ())
    weights = [1.0] * len(answers) if weights is None else weights
    if texts is not None:
        keep = distinct_texts(texts)
        result = vote([answers[i] for i in keep], [weights[i] for i in keep], timeout)
        return _reindex(result, keep)
    groups = _key_groups(answers, weights)
    none_groups = [g for g in groups if g.answer is None]
    ranked = _rank([g for g in groups if g.answer is not None])
    verdicts: dict[tuple[int, int], bool] = {}
    n_heads = _FIRST_HEADS
    clusters = ranked
    while ranked:
        clusters = _rank(_clusters(ranked, _merge(ranked, n_heads, timeout, verdicts)))
        if n_heads >= _MAX_HEADS or not _outsiders_could_win(ranked, n_heads, clusters):
            break
        n_heads *= 2
    final = clusters + none_groups
    return VoteResult(final[0].answer, final[0].members, tuple(final))


def _reindex(result: VoteResult, keep: Sequence[int]) -> VoteResult:
    """A vote over a subset, with members indexing the full input again."""
    groups = tuple(VoteGroup(g.answer, tuple(keep[m] for m in g.members), g.weight) for g in result.groups)
    return VoteResult(result.winner, tuple(keep[m] for m in result.members), groups)
