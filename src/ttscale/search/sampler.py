"""Generation for the expansion core: one generator call for every request of every problem in flight,
each request seeded from what it is (docs/DESIGN.md, "Where randomness comes from"), its tokens charged
to its problem's budget."""

from __future__ import annotations

from collections.abc import Sequence

from ttscale.backends.base import Generator
from ttscale.search.base import SearchSettings
from ttscale.search.records import Beam, ProblemState
from ttscale.search.seeds import request_seed
from ttscale.search.steps import StepRule
from ttscale.search.thinking import initial_state, token_cap
from ttscale.types import Generation, SamplingParams


class Sampler:
    """Turns requests (a prefix, how many children, a seed path) into one generator call."""

    def __init__(self, generator: Generator, settings: SearchSettings, rule: StepRule) -> None:
        self.generator, self.settings, self.rule = generator, settings, rule

    def _params(self, st: ProblemState, n: int, max_new_tokens: int, stop: tuple[str, ...], greedy: bool,
                seed_path: tuple[object, ...]) -> SamplingParams:
        s = self.settings
        return SamplingParams(
            temperature=0.0 if greedy else s.temperature,
            top_p=s.top_p,
            max_new_tokens=max_new_tokens,
            stop=stop,
            n=n,
            seed=request_seed(s.seed, st.problem.id, *seed_path),
            logprobs=s.logprobs,
        )

    def generate(
        self, states: Sequence[ProblemState], prefixes: Sequence[Beam | None], ns: Sequence[int],
        seed_paths: Sequence[tuple[object, ...]], whole: bool = False, greedy: bool = False,
        caps: Sequence[int | None] | None = None,
    ) -> list[list[Generation]]:
        """One generator call for all requests; budgets charged per problem.

        Request i samples ns[i] children of prefixes[i], seeded from (run seed, problem id,
        seed_paths[i]): a request's samples never depend on where it sits in the call.
        """
        s = self.settings
        stop = s.end_markers if whole else (*self.rule.stops, *s.end_markers)

        def params(st: ProblemState, prefix: Beam | None, n: int, path: tuple[object, ...], c: int | None) -> SamplingParams:
            think = prefix.think if prefix else initial_state(s.thinking, st.prompt)
            cap = max(1, s.max_new_tokens - (prefix.n_tokens if prefix else 0)) if whole else s.max_step_tokens
            caps_ = [x for x in (cap, c, token_cap(s.thinking, think)) if x is not None]
            # While a solution thinks, its end marker stops generation so the budget can be applied.
            stops = (*stop, s.thinking.end) if think is not None and not think.closed else stop
            return self._params(st, n, max(1, min(caps_)), stops, greedy, path)

        caps = caps or [None] * len(states)
        params_ = [params(st, b, n, path, c) for st, b, n, path, c in zip(states, prefixes, ns, seed_paths, caps, strict=True)]
        outputs = self.generator.generate([st.prompt + (b.text if b else "") for st, b in zip(states, prefixes)], params_)
        _charge(states, prefixes, outputs)
        return outputs


def _charge(states: Sequence[ProblemState], prefixes: Sequence[Beam | None], outputs: list[list[Generation]]) -> None:
    """Each problem pays one generator call per call it took part in, and its requests' tokens."""
    seen: set[int] = set()
    for st, prefix, gens in zip(states, prefixes, outputs):
        if id(st) not in seen:
            st.budget.generator_calls += 1
            seen.add(id(st))
        prompt_tokens = gens[0].prompt_tokens if gens else 0
        st.budget.prompt_tokens += prompt_tokens
        # A prefix cache has every token of an earlier round (prompt and generated steps)
        # already, so only round 1 reads its prompt for real.
        if prefix is not None and prefix.text:
            st.budget.prompt_tokens_reused += prompt_tokens
        st.budget.generated_tokens += sum(g.n_tokens for g in gens)
