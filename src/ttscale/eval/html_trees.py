"""One problem of one run as the HTML report shows it: the search tree's nodes, each with the state it
ended in, and the candidates with the vote the pick saw.

Reads only what a run wrote (trees.jsonl nodes, a completions.jsonl row), so it works on a folder from
another machine. trees.jsonl records parent, step, score and completed for each node; a node's fate
(pruned, a repeat of another beam, returned as a candidate, picked) is recovered here from the tree's
shape and the candidates' texts, with grading.solution_key, the one rule search used to call two
solutions the same.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ttscale.grading import solution_key, vote
from ttscale.grading.select import CONFIDENCE_SELECTIONS, solution_score
from ttscale.types import ProblemResult, Reduction, TreeNode

# Index = the state's code in a payload; report.js names and draws them in this order.
STATES = ("expanded", "pruned", "completed", "duplicate", "candidate", "chosen")
EXPANDED, PRUNED, COMPLETED, DUPLICATE, CANDIDATE, CHOSEN = range(len(STATES))


def _parents(nodes: Sequence[TreeNode]) -> list[int]:
    """Each node's parent as an index into `nodes` (-1: a root).

    Ids come from a file: an unknown parent, a node that is its own ancestor, or an id listed twice
    would otherwise loop or draw a node twice, so each such node hangs from the root instead.
    """
    if all(n.id == i and (n.parent is None or 0 <= n.parent < i) for i, n in enumerate(nodes)):
        return [-1 if n.parent is None else n.parent for n in nodes]  # as search writes them: nothing to repair
    index: dict[int, int] = {}
    for i, n in enumerate(nodes):
        index.setdefault(n.id, i)
    parent = [index.get(n.parent, -1) if n.parent is not None and index.get(n.id) == i else -1
              for i, n in enumerate(nodes)]
    state = [0] * len(nodes)  # 0 unseen, 1 on the walk now, 2 settled
    for start in range(len(nodes)):
        walk, i = [], start
        while i >= 0 and state[i] == 0:
            state[i] = 1
            walk.append(i)
            i = parent[i]
        if i >= 0 and state[i] == 1:  # came back to a node of this very walk: cut the loop there
            parent[i] = -1
        for j in walk:
            state[j] = 2
    return parent


def _order(parent: Sequence[int]) -> Sequence[int]:
    """Indices with every parent before its children."""
    if all(p < i for i, p in enumerate(parent)):
        return range(len(parent))
    children: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(parent):
        children[p].append(i)
    order, frontier = [], children[-1]
    while frontier:
        order += frontier
        frontier = [c for i in frontier for c in children[i]]
    return order


def _match(keys: Sequence[str], completed: Sequence[bool], leaf: Sequence[bool], texts: Sequence[str]) -> list[int]:
    """The node each candidate ends at (-1: none has its text); each node is one candidate's at most.

    A finished leaf is preferred: an unfinished beam that a later step did not change reads the same.
    """
    want = [solution_key(t) for t in texts]
    out = [-1] * len(texts)
    n = len(keys)
    tiers = (lambda i: completed[i] and leaf[i], lambda i: completed[i] and not leaf[i], lambda i: not completed[i])
    for in_tier in tiers:
        missing = [k for k, end in enumerate(out) if end < 0]
        if not missing:
            break
        free: dict[str, list[int]] = defaultdict(list)
        for i in range(n - 1, -1, -1):  # reversed, so pop() hands out the earliest node first
            if in_tier(i):
                free[keys[i]].append(i)
        for k in missing:
            if free.get(want[k]):
                out[k] = free[want[k]].pop()
    return out


def tree_payload(nodes: Sequence[TreeNode], texts: Sequence[str], selected: int | None) -> dict[str, Any]:
    """Columns of the tree for report.js: parent index, score, tokens, state code, step; the chosen path;
    and `candidate_nodes`, the node each candidate (by `texts`) ends at."""
    parent = _parents(nodes)
    leaf = [True] * len(nodes)
    for p in parent:
        if p >= 0:
            leaf[p] = False
    path: list[str] = [""] * len(nodes)
    depth = [0] * len(nodes)
    for i in _order(parent):
        p = parent[i]
        path[i] = (path[p] if p >= 0 else "") + nodes[i].step
        depth[i] = depth[p] + 1 if p >= 0 else 1
    keys = [solution_key(t) for t in path]
    # A repeat is a node whose whole text another node of its round (its depth) already had: the beam
    # grown twice that search.filter_duplicates drops, or that votes once when kept.
    seen: set[tuple[int, str]] = set()
    duplicate = [False] * len(nodes)
    for i in sorted(range(len(nodes)), key=lambda i: nodes[i].id):
        duplicate[i] = (depth[i], keys[i]) in seen
        seen.add((depth[i], keys[i]))
    completed = [n.completed for n in nodes]
    ends = _match(keys, completed, leaf, texts)
    state = [DUPLICATE if duplicate[i] else EXPANDED if not leaf[i] else COMPLETED if completed[i] else PRUNED
             for i in range(len(nodes))]
    for node in ends:
        if node >= 0:
            state[node] = CANDIDATE
    chosen: list[int] = []
    if selected is not None and 0 <= selected < len(ends) and ends[selected] >= 0:
        i = ends[selected]
        state[i] = CHOSEN
        while i >= 0:
            chosen.append(i)
            i = parent[i]
    return {
        "id": [n.id for n in nodes],
        "parent": parent,
        "score": [None if n.score is None else round(n.score, 4) for n in nodes],
        "tokens": [n.n_tokens for n in nodes],
        "state": state,
        "step": [n.step for n in nodes],
        "path": chosen[::-1],
        "candidate_nodes": ends,
    }


def pick_rule(selection: str, reduction: str, distinct: bool) -> str:
    """How the run's pick reads its candidates, in words for the page."""
    weight = {"majority": "one vote each", "naive": "highest score wins",
              "weighted": f"votes weighted by the {reduction} step score"}.get(selection, "votes weighted by confidence")
    return f"{selection} ({weight}){'; a repeated solution votes once' if distinct else ''}"


def _weights(result: ProblemResult, selection: str, reduction: Reduction) -> list[float] | None:
    cs = result.completions
    if selection in CONFIDENCE_SELECTIONS:
        return [c.confidence.self_certainty if c.confidence is not None else 0.0 for c in cs]
    if selection != "majority" and all(c.step_scores for c in cs):
        return [solution_score(c, reduction) for c in cs]
    return None


def candidates_payload(result: ProblemResult, correct: Sequence[bool], selection: str, reduction: Reduction,
                       with_text: bool) -> dict[str, Any]:
    """Each candidate's answer, correctness, score and vote group (-1: a repeat that cast no vote), and the
    groups as the pick saw them: heaviest first, with their votes and weight."""
    cs = result.completions
    weights = _weights(result, selection, reduction)
    tally = vote([c.answer for c in cs], weights, texts=[c.text for c in cs] if result.distinct else None)
    group = [-1] * len(cs)
    for g, members in enumerate(tally.groups):
        for m in members.members:
            group[m] = g
    out: dict[str, Any] = {
        "answer": [c.answer for c in cs],
        "ok": [bool(x) for x in correct],
        "score": [round(solution_score(c, reduction), 4) if c.step_scores else None for c in cs],
        "tokens": [c.n_tokens for c in cs],
        "finish": [c.dropped or c.finish_reason for c in cs],
        "group": group,
        "groups": [{"answer": g.answer, "votes": g.count, "weight": round(g.weight, 4),
                    "ok": bool(g.members) and bool(correct[g.members[0]])} for g in tally.groups],
        "selected": result.selected,
        "rule": pick_rule(selection, reduction, result.distinct),
    }
    if with_text:
        out["text"] = [c.text for c in cs]
    return out


def problem_payload(result: ProblemResult, correct: Sequence[bool], tree: Sequence[TreeNode] | None,
                    selection: str, reduction: Reduction) -> dict[str, Any]:
    """Everything the page shows of one problem in one run; the candidates' texts only when no tree holds them."""
    cands = candidates_payload(result, correct, selection, reduction, with_text=True)
    out: dict[str, Any] = {"error": result.error, "candidates": cands}
    if tree:
        t = tree_payload(tree, [c.text for c in result.completions], result.selected)
        ends = t.pop("candidate_nodes")
        cands["node"] = ends
        # a candidate found in the tree is its path's text there; the page rebuilds it from the steps
        cands["text"] = [None if e >= 0 else text for e, text in zip(ends, cands["text"])]
        out["tree"] = t
    return out
