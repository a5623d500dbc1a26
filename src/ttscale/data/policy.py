"""policy.json: the compute-optimal selector's bin -> strategy table, a run file like completions.jsonl.

`ttscale evaluate` writes it (eval/compute_optimal.py fits it); the compute_optimal strategy
reads it to route new problems. Both stand on this record, so search never imports evaluation.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ttscale.errors import ConfigError
from ttscale.types import SELECTIONS, Reduction, Selection, as_reduction

# Solutions sampled per new problem to estimate its model-based bin. Small on purpose: the
# probe is overhead on top of the chosen strategy; the policy file records it so users can raise it.
PROBE_N = 4


def assign_bin(score: float, edges: Sequence[float]) -> int:
    """1 for scores above every edge (easiest) .. len(edges) + 1 below every edge; ties go to the easier bin."""
    return len(edges) + 1 - bisect_right(list(edges), score)


@dataclass(frozen=True)
class PolicyEntry:
    """What to run for one (budget, bin): a registered strategy and the SearchSettings fields to replace."""

    method: str
    strategy: str
    settings: dict[str, Any]
    accuracy: float = 0.0  # in-sample accuracy in its bin, for reading the file
    # A pick made again over the candidates the strategy kept (grading.select.reselect), as evaluation
    # measured it, so that it holds also for a strategy whose own pick does not read search.selection.
    pick: Selection | None = None


@dataclass(frozen=True)
class Policy:
    """The learned bin -> strategy table (policy.json), with the model-based bin edges it needs."""

    edges: tuple[float, ...]
    reduction: Reduction
    budgets: dict[int, dict[int, PolicyEntry]]
    probe_n: int = PROBE_N
    meta: dict[str, Any] = field(default_factory=dict)

    def bin_of(self, mean_score: float) -> int:
        return assign_bin(mean_score, self.edges)

    def for_budget(self, n: int) -> dict[int, PolicyEntry]:
        """The table of the largest budget <= n, else the smallest one."""
        fitting = [b for b in self.budgets if b <= n]
        return self.budgets[max(fitting) if fitting else min(self.budgets)]

    def choose(self, n: int, b: int) -> PolicyEntry:
        """The entry for budget n and bin b; a bin no training problem fell in takes the nearest bin's."""
        table = self.for_budget(n)
        return table.get(b) or table[min(table, key=lambda k: (abs(k - b), k))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "binning": "model",
            "edges": list(self.edges),
            "reduction": self.reduction,
            "probe_n": self.probe_n,
            "budgets": {str(n): {str(b): asdict(e) for b, e in t.items()} for n, t in sorted(self.budgets.items())},
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        if path is None:
            raise ConfigError("search.strategy=compute_optimal needs a policy.json: set search.policy to one that "
                              "`ttscale evaluate` wrote", field="search.policy")
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            budgets = {
                int(n): {int(b): PolicyEntry(**e) for b, e in table.items()} for n, table in raw["budgets"].items()
            }
            policy = cls(tuple(raw["edges"]), as_reduction(raw["reduction"]), budgets, int(raw.get("probe_n", PROBE_N)),
                         raw.get("meta", {}))
        except FileNotFoundError:
            raise ConfigError(f"search.policy={str(path)!r}: file not found; write one with `ttscale evaluate`",
                              field="search.policy") from None
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
            raise ConfigError(f"search.policy={str(path)!r} is not a policy.json from `ttscale evaluate` ({e})",
                              field="search.policy") from None
        bad = [e.pick for t in policy.budgets.values() for e in t.values() if e.pick is not None and e.pick not in SELECTIONS]
        if bad:
            raise ConfigError(f"search.policy={str(path)!r}: pick {bad[0]!r} is not one of {', '.join(SELECTIONS)}",
                              field="search.policy")
        if not policy.budgets:
            raise ConfigError(f"search.policy={str(path)!r} holds no budgets", field="search.policy")
        return policy
