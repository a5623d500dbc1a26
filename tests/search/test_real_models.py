"""Every strategy end to end on the real embedded model (SmolLM2-135M on CPU)."""

from pathlib import Path

import pytest

from ttscale.data.results import read_results, read_trees
from ttscale.eval.trees import format_tree
from ttscale.recipe import load_config
from ttscale.runner import run

MATH500 = Path(__file__).resolve().parents[3] / "shared" / "data" / "math500.jsonl"


@pytest.mark.slow
@pytest.mark.parametrize("strategy, verifier", [
    ("beam_search", "lm_judge"), ("dvts", "arithmetic_rules"), ("particle_filtering", "lm_judge"),
])
def test_strategies_run_on_math500_with_the_chat_prompt(tmp_path, smollm2, strategy, verifier):
    cfg = load_config(None, [
        f"dataset.source={MATH500}", "dataset.limit=3", "prompt.mode=chat", f"search.strategy={strategy}",
        "search.n=4", "search.beam_width=2", "search.max_iterations=3", "sampling.max_step_tokens=24",
        "sampling.max_new_tokens=96", f"verifier.name={verifier}", "verifier.model=embedded:smollm2",
        "output.save_trees=true",
        "search.problems_per_batch=3", f"output.dir={tmp_path / strategy}",
    ])
    outcome = run(cfg, generator=smollm2, progress=False)
    results = read_results(tmp_path / strategy)
    assert len(results) == 3 and all(r.error is None for r in results)
    assert all(len(r.completions) == 4 for r in results)  # DVTS too: 2 candidates from each of 2 subtrees
    assert all(r.budget.generated_tokens > 0 and r.budget.flops > 0 for r in results)
    assert outcome.metrics["n_problems"] == 3
    trees = read_trees(tmp_path / strategy)
    assert set(trees) == {r.id for r in results}
    text = format_tree(trees[results[0].id])
    assert text.count("\n") + 1 == len(trees[results[0].id]) and "#0 [" in text


@pytest.mark.slow
def test_beam_search_with_rules_on_arithmetic_selects_a_checked_solution(tmp_path, smollm2):
    cfg = load_config(None, [
        "prompt.mode=completion", "search.step_delimiter=\\n", "dataset.levels=[1]", "dataset.limit=2",
        "search.strategy=beam_search", "search.n=4", "search.beam_width=2", "search.max_iterations=4",
        "sampling.max_step_tokens=32", "sampling.max_new_tokens=80", "verifier.name=arithmetic_rules",
        f"output.dir={tmp_path / 'beam'}",
    ])
    run(cfg, generator=smollm2, progress=False)
    for r in read_results(tmp_path / "beam"):
        assert len(r.completions) == 4
        chosen = r.completions[r.selected]
        assert chosen.step_scores is not None and len(chosen.step_scores) == len(chosen.steps)
        # the pick is never worse-scored than another finished candidate under the `last` reduction
        finished = [c.step_scores[-1] for c in r.completions if c.finished and c.answer is not None]
        if chosen.finished and chosen.answer is not None and finished:
            assert chosen.step_scores[-1] >= min(finished)


@pytest.mark.slow
def test_a_completion_mode_sample_ends_at_its_first_blank_line(smollm2):
    """With the format's end markers a sample is the same sample cut where the exemplars end theirs."""
    from ttscale.config import PromptConfig
    from ttscale.data.prompts import build_prompt_format
    from ttscale.data.synthetic import arithmetic_problems
    from ttscale.types import SamplingParams

    fmt = build_prompt_format(PromptConfig(mode="completion", n_shot=2), "\n")
    prompt = fmt.render(arithmetic_problems(1, seed=3000, levels=[2])[0])
    marked, unmarked = (smollm2.generate([prompt], [SamplingParams(max_new_tokens=96, n=16, seed=7, stop=stop)])[0]
                        for stop in (fmt.end_markers, ("\nQuestion:",)))
    assert any("\n\n" in g.text.strip() for g in unmarked)  # the model does write past a blank line
    for a, b in zip(marked, unmarked, strict=True):
        assert "\n\n" not in a.text.strip("\n")
        assert a.text.rstrip("\n") == b.text.split("\n\n")[0].rstrip("\n")
        assert a.n_tokens <= b.n_tokens
