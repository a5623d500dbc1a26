"""PRM beam search (Snell et al. 2024; search-and-learn's beam_search.py, docs/ALGORITHMS.md): keep the top N/M
active beams, expand each by M."""

from __future__ import annotations

from ttscale.errors import ConfigError
from ttscale.search.base import SearchSettings
from ttscale.search.records import Beam, CompletionPool, Expansion, top
from ttscale.search.rounds import RoundStrategy
from ttscale.types import Problem


class BeamPolicy(CompletionPool):
    """Keep the top N/M active beams by score and grow N children from them; stop once N are complete.

    As in search-and-learn, the active set is topped back up to N every round: when fewer
    than N/M beams are left, each gets more than M children. The round at `max_iterations`
    runs the surviving beams to the end of the solution (no stop at the step delimiter), so
    a search cut at the depth limit still returns answers.
    """

    def __init__(self, n: int, beam_width: int, max_iterations: int) -> None:
        super().__init__(n)
        self.keep, self.width = n // beam_width, beam_width
        self.rounds_left = max_iterations

    def initial(self) -> list[Expansion]:
        return [Expansion(None, self.n, whole=self._last_round())]

    def step(self, children: list[Beam]) -> list[Expansion]:
        self.absorb(children)
        if len(self.completed) >= self.n or not self.active:
            return []
        whole = self._last_round()
        kept = top(self.active, self.keep)
        share, extra = divmod(self.n, len(kept))
        return [Expansion(b, share + (i < extra), whole=whole) for i, b in enumerate(kept)]

    def _last_round(self) -> bool:
        self.rounds_left -= 1
        return self.rounds_left == 0


def check_beam_width(strategy: str, settings: SearchSettings) -> None:
    """N/M beams (or subtrees) need M to divide N; else N silently shrinks to a multiple of M.

    Checked where a search starts (run, serve), not when a config loads: a run folder written
    without this check must still evaluate."""
    n, m = settings.n, settings.beam_width
    if n % m == 0:
        return
    nearest = [str(v) for v in (n - n % m, n - n % m + m) if v >= m]
    raise ConfigError(f"search.beam_width={m} does not divide search.n={n} ({strategy} runs N/M beams); "
                      f"use search.n={' or '.join(nearest)}, or a beam_width that divides {n}", field="search.beam_width")


class BeamSearch(RoundStrategy):
    name = "beam_search"
    needs_verifier = True

    def validate(self, settings: SearchSettings) -> None:
        check_beam_width(self.name, settings)

    def policy(self, problem: Problem, settings: SearchSettings) -> BeamPolicy:
        return BeamPolicy(settings.n, settings.beam_width, settings.max_iterations)
