"""Self-certainty picks, the self_certainty verifier and speculative rejection on a real transformers model:
a tiny randomly initialised Llama (built here from a config, with SmolLM2's tokenizer) behind the HF backend,
whose recorded log-probabilities are the model's own."""

import math

import pytest

from ttscale.config import RejectionConfig
from ttscale.grading.select import select
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.speculative_rejection import REJECTED
from ttscale.types import Problem
from ttscale.verifiers.self_certainty import SelfCertaintyVerifier

PROBLEMS = [Problem(f"p{i}", f"What is {10 + 7 * i} + {31 + 5 * i}?", str(41 + 12 * i)) for i in range(3)]
PROMPTS = [f"Question: {p.question}\nAnswer:" for p in PROBLEMS]


@pytest.fixture(scope="module")
def tiny_llama():
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ttscale.models.loading import resolve_source

    tok = AutoTokenizer.from_pretrained(resolve_source("embedded:smollm2", None)[0])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id,
                      initializer_range=0.2)  # spread logits, so the policy is surer of some tokens than of others
    return LlamaForCausalLM(cfg).eval(), tok


class Counting:
    """The HF generator, counting the samples asked for in each call."""

    def __init__(self, inner):
        self.inner, self.samples_per_call = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, prompts, params):
        self.samples_per_call.append(sum(q.n for q in params))
        return self.inner.generate(prompts, params)


def hf(tiny_llama, batch_invariant=False):
    from ttscale.backends.hf import HFGenerator
    from ttscale.config import ModelConfig

    model, tok = tiny_llama
    cfg = ModelConfig(max_batch_size=32, dtype="float32", batch_invariant=batch_invariant)
    return Counting(HFGenerator(cfg, model=model, tokenizer=tok))


def settings(**kw):
    base = dict(n=6, temperature=1.0, step_delimiter="\n", max_step_tokens=6, max_new_tokens=16, max_iterations=3,
                seed=5, save_trees=True)
    return SearchSettings(**{**base, **kw})


@pytest.mark.parametrize("selection", ["self_certainty", "confidence_weighted"])
def test_best_of_n_picks_by_the_models_own_confidence(tiny_llama, selection):
    gen = hf(tiny_llama)
    results = build_strategy("best_of_n").search(PROBLEMS, PROMPTS, gen, None,
                                                 settings(selection=selection, save_logprobs=True))
    for r in results:
        for c in r.completions:
            # the HF backend recorded the top 20 of the model's distribution at every generated token
            assert c.confidence is not None and c.confidence.n_tokens == c.n_tokens == len(c.top_logprobs) > 0
            assert all(len(row) == 20 and list(row) == sorted(row, reverse=True) for row in c.top_logprobs)
            assert math.isfinite(c.confidence.self_certainty) and c.confidence.self_certainty > 0
        certainty = [c.confidence.self_certainty for c in r.completions]
        assert len(set(certainty)) == len(certainty)  # a random model is surer of some samples than of others
        assert r.selected == select(r.completions, selection)  # evaluate recomputes the same pick from the file
        if selection == "self_certainty":
            assert certainty[r.selected] == max(certainty)


def test_beam_search_keeps_the_beams_the_model_is_surest_of(tiny_llama):
    gen = hf(tiny_llama)
    s = settings(n=4, beam_width=2, selection="naive")
    for r in build_strategy("beam_search").search(PROBLEMS, PROMPTS, gen, SelfCertaintyVerifier(), s):
        assert r.budget.verifier_tokens == 0 and r.budget.generated_tokens > 0
        for c in r.completions:
            assert len(c.step_scores) == len(c.steps) and all(0 <= x < 1 for x in c.step_scores)
            assert c.step_scores[-1] == pytest.approx(1 - math.exp(-c.confidence.self_certainty), abs=1e-9)
        roots = [n for n in r.tree if n.parent is None]
        grown = {n.parent for n in r.tree if n.parent is not None and r.tree[n.parent].parent is None}
        open_roots = sorted((n for n in roots if not n.completed), key=lambda n: -n.score)
        assert grown == {n.id for n in open_roots[: s.n // s.beam_width]}  # the surest of round 1 were expanded
        last = [c.step_scores[-1] for c in r.completions]
        assert last[r.selected] == max(last)


def test_speculative_rejection_stops_the_least_certain_samples(tiny_llama):
    from ttscale.confidence import self_certainty

    gen = hf(tiny_llama)
    s = settings(n=8, max_new_tokens=16, rejection=RejectionConfig(rate=0.5, chunk_tokens=4), save_logprobs=True)
    results = build_strategy("speculative_rejection").search(PROBLEMS, PROMPTS, gen, SelfCertaintyVerifier(), s)
    # one call per checkpoint for all three problems: 8 samples each, then at most 4 (fewer where some ended)
    assert gen.samples_per_call[0] == 24 and gen.samples_per_call[1] <= 12 and len(gen.samples_per_call) <= 4
    for r in results:
        rejected = [c for c in r.completions if c.dropped == REJECTED]
        assert len(r.completions) == 8 and len(rejected) >= 4
        assert all(not c.finished and c.n_tokens % 4 == 0 and c.n_tokens < 16 for c in rejected)
        assert r.budget.generated_tokens == sum(c.n_tokens for c in r.completions)
        assert r.completions[r.selected].dropped is None
        # the first checkpoint stopped the samples the model was least sure of over their first 4 tokens
        at_4 = [self_certainty(c.top_logprobs[:4]) for c in r.completions]
        stopped = [x for x, c in zip(at_4, r.completions) if c.dropped == REJECTED and c.n_tokens == 4]
        went_on = [x for x, c in zip(at_4, r.completions) if c.n_tokens > 4]
        assert stopped and went_on and max(stopped) <= min(went_on)


@pytest.mark.slow
def test_speculative_rejection_searches_a_problem_the_same_whatever_its_batch(tiny_llama):
    """model.batch_invariant: a problem's samples, and so its checkpoints' verdicts, never move with its neighbours."""
    s = settings(n=8, max_new_tokens=16, rejection=RejectionConfig(chunk_tokens=4))
    strategy, gen = build_strategy("speculative_rejection"), hf(tiny_llama, batch_invariant=True)
    together = strategy.search(PROBLEMS, PROMPTS, gen, SelfCertaintyVerifier(), s)
    alone = [strategy.search([p], [q], gen, SelfCertaintyVerifier(), s)[0] for p, q in zip(PROBLEMS, PROMPTS)]
    assert [[c.text for c in r.completions] for r in together] == [[c.text for c in r.completions] for r in alone]
    assert [r.selected for r in together] == [r.selected for r in alone]
