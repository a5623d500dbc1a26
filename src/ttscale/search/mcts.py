"""MCTS over reasoning steps: a tree grown where the verifier's values and the visit counts say to look.

Monte Carlo tree search as the step-level searches of rStar (Qi et al. 2024, arXiv 2408.06195),
rStar-Math (Guan et al. 2025, arXiv 2501.04519) and OpenR (Wang et al. 2024, arXiv 2410.09671)
run it, on the one expansion core:

- selection: from the root, the child with the highest UCT, Q + c sqrt(ln N_parent / N)
  (Kocsis & Szepesvari 2006), or PUCT, Q + c P sqrt(N_parent) / (1 + N) (Silver et al. 2017),
  P the softmax over siblings of each step's mean token log-probability under the policy;
- expansion: the selected leaf gets `search.beam_width` children (one step each);
- simulation: a child's value is its verifier score, after `search.lookahead` greedy steps when
  set (the PRM as value function, as rStar-Math's process preference model and OpenR's PRM are);
- backup: each ancestor's visit count grows by the children's, and Q is the mean (or the max)
  of the values below it.

Compute is matched to beam search's: round 1 gives the root N children, and every later round
selects N / beam_width distinct leaves (a leaf chosen this round is skipped by the next descent,
the virtual loss of parallel MCTS) and expands each, so a round asks for N steps as a beam-search
round does. A search is not matched, only a round: the leaves a round picks sit at several
depths (the exploration term returns to shallow ones), so fewer of its children end a solution
than when beam search's beams advance in step, and MCTS takes more rounds to finish N (README,
"MCTS over steps", has the measured counts). The round at `max_iterations` runs its leaves to
the end of the solution. A finished
child is a terminal node: it is a candidate and is never expanded; the search stops once N
candidates are finished or no leaf is left. `finish` returns N, the finished ones first by value,
then the best unfinished leaves, as beam search does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ttscale.errors import ConfigError
from ttscale.search.base import SearchSettings
from ttscale.search.beam import check_beam_width
from ttscale.search.records import Beam, Expansion, softmax, top
from ttscale.search.rounds import RoundStrategy
from ttscale.search_sections import MCTSConfig
from ttscale.types import Problem


@dataclass(eq=False)  # nodes are compared by identity: two branches may hold the same text
class Node:
    beam: Beam | None  # None: the root (the prompt)
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    total: float = 0.0  # sum of the values backed up through here (the mean backup)
    best: float = -math.inf  # the highest value backed up through here (the max backup)
    prior: float = 1.0
    # leaves at or below this node whose solutions go on, kept up to date as the tree grows so that a
    # descent asks it in O(1) instead of walking the subtree (quadratic in the nodes over a search)
    open_leaves: int = field(init=False)

    def __post_init__(self) -> None:
        self.open_leaves = int(self.beam is None or not self.beam.finished)  # a new node is a leaf

    @property
    def expandable(self) -> bool:
        """A leaf whose solution goes on, or an inner node with such a leaf below it."""
        return self.open_leaves > 0


class MCTSPolicy:
    def __init__(self, n: int, beam_width: int, max_iterations: int, cfg: MCTSConfig) -> None:
        self.n, self.width, self.cfg = n, min(beam_width, n), cfg
        self.root = Node(None)
        self.rounds_left = max_iterations
        self.asked: list[Node] = []  # the leaves expanded this round, in request order
        self.completed: list[Beam] = []
        self.leaves: list[Beam] = []  # unfinished leaves, for `finish` when the search is cut short

    def initial(self) -> list[Expansion]:
        self.asked = [self.root]
        return [Expansion(None, self.n, whole=self._last_round())]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self._attach(children)
        if len(self.completed) >= self.n or not self.root.expandable:
            return []
        whole = self._last_round()
        self.asked = []
        for _ in range(max(1, self.n // self.width)):
            leaf = self._select()
            if leaf is None:
                break
            self.asked.append(leaf)
        return [Expansion(leaf.beam, self.width, whole=whole) for leaf in self.asked]

    def finish(self) -> list[Beam]:
        done = top(self.completed, self.n)
        return done + top(self.leaves, self.n - len(done))

    def _last_round(self) -> bool:
        self.rounds_left -= 1
        return self.rounds_left == 0

    def _attach(self, children: list[Beam]) -> None:
        """Hang each child under the leaf that asked for it and back its value up to the root."""
        expanded = {id(leaf.beam): leaf for leaf in self.asked}
        by_parent: dict[int, list[Beam]] = {}
        for child in children:
            by_parent.setdefault(self._parent_key(child, expanded), []).append(child)
        for key, kids in by_parent.items():
            leaf = expanded[key]
            priors = self._priors(leaf, kids)
            was_open = leaf.open_leaves if not leaf.children else 0  # an asked leaf counted itself
            for child, prior in zip(kids, priors):
                node = Node(child, parent=leaf, prior=prior)
                leaf.children.append(node)
                (self.completed if child.finished else self.leaves).append(child)
                self._backup(node, child.value)
            self._reopen(leaf, sum(not child.finished for child in kids) - was_open)
        grown = {key for key in by_parent}  # these leaves are inner nodes now
        self.leaves = [b for b in self.leaves if id(b) not in grown]

    def _parent_key(self, child: Beam, expanded: dict[int, Node]) -> int:
        """The leaf a child grew from: the asked leaf whose steps its steps extend (the root: none)."""
        best, key = -1, id(None)
        for k, leaf in expanded.items():
            steps = leaf.beam.steps if leaf.beam is not None else ()
            if len(steps) > best and child.steps[: len(steps)] == steps:
                best, key = len(steps), k
        return key

    def _priors(self, leaf: Node, kids: list[Beam]) -> list[float]:
        if self.cfg.selection != "puct":
            return [1.0] * len(kids)
        start = len(leaf.beam.logprobs) if leaf.beam is not None else 0
        means = [sum(k.logprobs[start:]) / max(1, len(k.logprobs) - start) for k in kids]
        return softmax(means, 1.0)

    def _backup(self, node: Node, value: float) -> None:
        at: Node | None = node
        while at is not None:
            at.visits += 1
            at.total += value
            at.best = max(at.best, value)
            at = at.parent

    def _reopen(self, node: Node, delta: int) -> None:
        """`node` and its ancestors gain `delta` open leaves (a leaf that grew children is no longer one)."""
        at: Node | None = node
        while at is not None and delta:
            at.open_leaves += delta
            at = at.parent

    def _q(self, node: Node) -> float:
        return node.best if self.cfg.backup == "max" else node.total / max(1, node.visits)

    def _select(self) -> Node | None:
        """Descend by the tree policy to a leaf not yet chosen this round; None when none is left."""
        node = self.root
        while node.children:
            options = [c for c in node.children if c.expandable and c not in self.asked]
            options = [c for c in options if c.children or c.beam is None or not c.beam.finished]
            if not options:
                return None if node is self.root else self._dead_end(node)
            node = max(options, key=lambda c: self._score(node, c))  # ties: the earlier child (deterministic)
        return node if node not in self.asked else None

    def _dead_end(self, node: Node) -> Node | None:
        """Every way down from `node` is taken this round: try again from the root without it."""
        self.asked.append(node)  # marks it (and so its subtree) unavailable for this round's descents
        found = self._select()
        self.asked.remove(node)
        return found

    def _score(self, parent: Node, child: Node) -> float:
        q = self._q(child)
        if self.cfg.selection == "puct":
            return q + self.cfg.c * child.prior * math.sqrt(parent.visits) / (1 + child.visits)
        return q + self.cfg.c * math.sqrt(math.log(max(parent.visits, 1)) / max(child.visits, 1))


class MCTS(RoundStrategy):
    name = "mcts"
    needs_verifier = True

    def validate(self, settings: SearchSettings) -> None:
        check_beam_width(self.name, settings)
        if settings.mcts.selection == "puct" and settings.logprobs < 1:
            raise ConfigError("search.mcts.selection=puct weighs each step by the policy's log-probabilities; set "
                              "sampling.logprobs=1 (or more), or use search.mcts.selection=uct",
                              field="search.mcts.selection")

    def policy(self, problem: Problem, settings: SearchSettings) -> MCTSPolicy:
        return MCTSPolicy(settings.n, settings.beam_width, settings.max_iterations, settings.mcts)
