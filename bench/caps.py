"""What each strategy spends under each cap: the most any problem spent against the cap it was given.

`search.max_tokens_per_problem` and `search.max_flops_per_problem` are caps no strategy passes:
this prints, for every registered strategy, the largest generated-token count (or FLOPs) over
8 synthetic problems under each cap, with and without lookahead, on the fake backend (1M
parameters) and a fake verifier of 2M parameters, so the verifier's reads count as a real PRM's
do. `ours` is the most spent, `baseline` the cap: a ratio above 1.00x is a cap passed.

    python bench/caps.py
"""

from __future__ import annotations

from _common import header, row

from ttscale.backends.fake import FakeGenerator
from ttscale.data.synthetic import arithmetic_problems
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.base import STRATEGIES
from ttscale.verifiers.fake import FakeVerifier


class PricedVerifier(FakeVerifier):
    n_params = 2_000_000


CAPS = [("max_tokens_per_problem", 20), ("max_tokens_per_problem", 100), ("max_flops_per_problem", 6e8)]
SPENT = {"max_tokens_per_problem": lambda b: b.generated_tokens, "max_flops_per_problem": lambda b: b.flops}


def main() -> None:
    problems = arithmetic_problems(8, seed=4)
    prompts = [f"Question: {p.question}\nSolution:\n" for p in problems]
    header()
    for name in STRATEGIES.names():
        if name == "compute_optimal":
            continue  # it needs a policy file from `ttscale evaluate`; the contract suite covers it
        for cap, limit in CAPS:
            for lookahead in (0, 2):
                s = SearchSettings(n=8, beam_width=4, step_delimiter="\n", end_markers=("\nQuestion:",),
                                   max_step_tokens=10, max_new_tokens=60, max_iterations=10,
                                   lookahead=lookahead, **{cap: limit})
                results = build_strategy(name).search(problems, prompts, FakeGenerator(), PricedVerifier(), s)
                spent = max(SPENT[cap](r.budget) for r in results)
                unit = "tokens" if cap.startswith("max_tokens") else "FLOPs"
                label = f"{name} {cap.split('_')[1]}<={limit:g} la={lookahead}"
                row(label, spent, limit, f"most spent vs cap ({unit})")


if __name__ == "__main__":
    main()
