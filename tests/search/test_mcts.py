"""MCTS (search/mcts.py): the tree policy, the backup and the stop, on hand-made beams; then a search on a
real transformers model."""

from __future__ import annotations

import math

import pytest

from ttscale.config import MCTSConfig
from ttscale.errors import ConfigError
from ttscale.search import SearchSettings, build_strategy
from ttscale.search.mcts import MCTSPolicy
from ttscale.search.records import Beam
from ttscale.types import Problem


def beam(*steps: str, value: float, finished: bool = False, logprobs: tuple[float, ...] = ()) -> Beam:
    return Beam(steps=tuple(steps), value=value, finished=finished, logprobs=logprobs)


def test_round_one_gives_the_root_n_children_and_round_two_expands_the_n_over_m_best():
    pol = MCTSPolicy(4, 2, 5, MCTSConfig(c=0.5))
    (first,) = pol.initial()
    assert first.parent is None and first.k == 4 and not first.whole
    kids = [beam("a\n", value=0.2), beam("b\n", value=0.9), beam("c\n", value=0.5), beam("d\n", value=0.1)]
    asked = pol.step(kids)
    # equal visits, equal exploration bonus: the two highest values, best first
    assert [e.parent.steps for e in asked] == [("b\n",), ("c\n",)] and all(e.k == 2 for e in asked)
    assert pol.root.visits == 4 and pol.root.total == pytest.approx(1.7)


@pytest.mark.parametrize("backup, expected", [("mean", (0.9 + 0.1 + 0.3) / 3), ("max", 0.9)])
def test_the_backup_sets_an_expanded_nodes_value(backup, expected):
    pol = MCTSPolicy(2, 2, 5, MCTSConfig(backup=backup, c=0.0))
    pol.initial()
    pol.step([beam("a\n", value=0.9), beam("b\n", value=0.5)])  # c = 0: pure exploitation picks "a"
    asked = pol.step([beam("a\n", "x\n", value=0.1), beam("a\n", "y\n", value=0.3)])
    a = next(c for c in pol.root.children if c.beam.steps == ("a\n",))
    assert a.visits == 3 and pol._q(a) == pytest.approx(expected)
    # mean: "a" fell to 0.43 < "b"'s 0.5, so "b" is expanded next; max: "a" still holds 0.9 and its best child goes on
    assert [e.parent.steps for e in asked] == ([("b\n",)] if backup == "mean" else [("a\n", "y\n")])


def test_exploration_prefers_the_less_visited_branch_when_c_is_large():
    pol = MCTSPolicy(2, 2, 5, MCTSConfig(c=10.0))
    pol.initial()
    pol.step([beam("a\n", value=0.9), beam("b\n", value=0.5)])
    asked = pol.step([beam("a\n", "x\n", value=0.9), beam("a\n", "y\n", value=0.9)])
    assert [e.parent.steps for e in asked] == [("b\n",)]  # "a" has 3 visits, "b" 1


def test_a_finished_child_is_a_candidate_and_never_expanded_and_n_finished_stop_the_search():
    pol = MCTSPolicy(2, 2, 5, MCTSConfig(c=0.0))
    pol.initial()
    asked = pol.step([beam("done \\boxed{1}", value=0.99, finished=True), beam("b\n", value=0.1)])
    assert [e.parent.steps for e in asked] == [("b\n",)]
    assert pol.step([beam("b\n", "end \\boxed{2}", value=0.5, finished=True), beam("b\n", "z\n", value=0.4)]) == []
    out = pol.finish()
    assert [b.value for b in out] == [0.99, 0.5] and all(b.finished for b in out)


def test_the_open_leaf_counts_kept_as_the_tree_grows_match_a_walk_of_the_tree():
    """`expandable` reads a count kept on each node; a random search with finished and unfinished
    children must leave every count equal to the open leaves a full walk finds below it."""
    import random

    def walk(node) -> int:
        if not node.children:
            return int(node.beam is None or not node.beam.finished)
        return sum(walk(c) for c in node.children)

    def nodes(node):
        yield node
        for c in node.children:
            yield from nodes(c)

    rng = random.Random(7)
    pol = MCTSPolicy(8, 2, 30, MCTSConfig(c=1.0))
    asked = pol.initial()
    for _ in range(30):
        kids = []
        for e in asked:
            steps = e.parent.steps if e.parent is not None else ()
            for j in range(e.k):
                kids.append(beam(*steps, f"s{len(steps)}{j}{rng.random():.3f}\n", value=rng.random(),
                                 finished=rng.random() < 0.15))
        asked = pol.step(kids)
        assert all(n.open_leaves == walk(n) for n in nodes(pol.root))
        if not asked:
            break
    assert pol.root.children and not asked  # the search ended: N finished, or no open leaf left


def test_puct_weighs_siblings_by_the_policys_log_probabilities():
    pol = MCTSPolicy(2, 2, 5, MCTSConfig(selection="puct", c=1.0))
    pol.initial()
    asked = pol.step([beam("a\n", value=0.5, logprobs=(-3.0, -3.0)), beam("b\n", value=0.5, logprobs=(-0.1, -0.1))])
    b = next(c for c in pol.root.children if c.beam.steps == ("b\n",))
    assert b.prior == pytest.approx(1 / (1 + math.exp(-2.9)))
    assert [e.parent.steps for e in asked] == [("b\n",)]


def test_puct_without_recorded_log_probabilities_is_refused_naming_the_field():
    settings = SearchSettings(n=4, beam_width=2, mcts=MCTSConfig(selection="puct"))
    with pytest.raises(ConfigError, match="sampling.logprobs") as e:
        build_strategy("mcts").validate(settings)
    assert e.value.field == "search.mcts.selection"
    build_strategy("mcts").validate(SearchSettings(n=4, beam_width=2, logprobs=1, mcts=MCTSConfig(selection="puct")))


def test_mcts_on_a_tiny_llama_behind_the_hf_backend_returns_n_and_keeps_its_tree():
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ttscale.backends.hf import HFGenerator
    from ttscale.config import ModelConfig
    from ttscale.models.loading import resolve_source
    from ttscale.verifiers.arithmetic import ArithmeticRulesVerifier

    tok = AutoTokenizer.from_pretrained(resolve_source("embedded:smollm2", None)[0])
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, eos_token_id=tok.eos_token_id)
    gen = HFGenerator(ModelConfig(dtype="float32", max_batch_size=16), model=LlamaForCausalLM(cfg).eval(), tokenizer=tok)
    problems = [Problem(f"m{i}", f"What is {2 + i} + {3 + i}?", str(5 + 2 * i)) for i in range(2)]
    prompts = [f"Question: {p.question}\nAnswer:" for p in problems]
    settings = SearchSettings(n=4, beam_width=2, temperature=1.0, step_delimiter="\n", max_step_tokens=4,
                              max_new_tokens=12, max_iterations=3, seed=7, save_trees=True, logprobs=1,
                              mcts=MCTSConfig(selection="puct"))
    mcts = build_strategy("mcts")
    together = mcts.search(problems, prompts, gen, ArithmeticRulesVerifier(), settings)
    alone = [mcts.search([p], [q], gen, ArithmeticRulesVerifier(), settings)[0] for p, q in zip(problems, prompts)]
    for r, a in zip(together, alone):
        assert r.error is None and len(r.completions) == 4
        assert r.tree is not None and len(r.tree) > 4  # round 1's four children, then the expanded leaves'
        assert [c.text for c in r.completions] == [c.text for c in a.completions]  # the same whatever the batch
        assert r.budget.generated_tokens > 0
