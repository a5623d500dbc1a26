"""think_judge: a written check per step, then the verdict read after it (verifiers/think_judge.py)."""

from __future__ import annotations

import pytest

from ttscale.config import VerifierConfig
from ttscale.types import Problem
from ttscale.verifiers.think_judge import SYSTEM_PROMPT, VERDICT, ThinkingJudge

PROBLEM = Problem("t", "Tom has 5 apples and buys 4 more. How many apples does he have?", "9")
STEPS = ["Tom buys 4 more, so 5 + 4 = 9.", "The answer is \\boxed{9}."]


@pytest.fixture
def judge(smol_judge):
    model, tok = smol_judge
    return ThinkingJudge(VerifierConfig(name="think_judge", think_tokens=12), model=model, tokenizer=tok)


class CountingGenerate:
    """Wraps model.generate to count the rows it decodes."""

    def __init__(self, model):
        self.model, self.inner, self.rows = model, model.generate, 0

    def __call__(self, *args, **kwargs):
        self.rows += kwargs["input_ids"].shape[0]
        return self.inner(*args, **kwargs)


def test_each_check_is_written_once_and_a_later_step_writes_only_its_own(judge, monkeypatch):
    counter = CountingGenerate(judge.model)
    monkeypatch.setattr(judge.model, "generate", counter)
    first = judge.score([PROBLEM], [STEPS[:1]])
    assert counter.rows == 1
    full = judge.score([PROBLEM], [STEPS])
    assert counter.rows == 2  # step 1's check is kept; only step 2's is written
    assert full[0][:1] == pytest.approx(first[0], abs=1e-5)
    judge.score([PROBLEM, PROBLEM], [STEPS, STEPS])
    assert counter.rows == 2


def test_the_verdict_is_read_after_the_written_check_the_slow_way(judge, smol_judge):
    """Step k's score is softmax over (" yes", " no") at the end of "... check\\nVerdict:" in one plain forward."""
    import torch

    model, tok = smol_judge
    scores = judge.score([PROBLEM], [STEPS])[0]
    checks = [judge._checks[(PROBLEM.question, tuple(STEPS[: k + 1]))][0] for k in range(len(STEPS))]
    yes = sorted({tok.encode(w, add_special_tokens=False)[0] for w in (" yes", " Yes")})
    no = sorted({tok.encode(w, add_special_tokens=False)[0] for w in (" no", " No")})
    for k in range(len(STEPS)):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for j in range(k + 1):
            head = f"Problem: {PROBLEM.question}\n\nFirst step:\n" if j == 0 else "Next step:\n"
            messages.append({"role": "user", "content": f"{head}{STEPS[j]}\n\nCheck this step, then give your verdict."})
            messages.append({"role": "assistant", "content": f"{checks[j]}\n{VERDICT} yes"})
        text = tok.apply_chat_template(messages, tokenize=False)
        cut = text.rfind(f"{VERDICT} yes") + len(VERDICT)
        ids = tok(text[:cut], add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            logp = model(input_ids=ids).logits[0, -1].float().log_softmax(-1)
        expected = torch.sigmoid(torch.logsumexp(logp[yes], 0) - torch.logsumexp(logp[no], 0)).item()
        assert scores[k] == pytest.approx(expected, abs=1e-4)


def test_the_checks_count_in_the_verifiers_tokens(judge, smol_judge):
    model, tok = smol_judge
    plain = ThinkingJudge(VerifierConfig(name="think_judge", think_tokens=12, kv_cache_mb=0), model=model,
                          tokenizer=tok)
    plain.score([PROBLEM], [STEPS])
    checks = [plain._checks[(PROBLEM.question, tuple(STEPS[: k + 1]))] for k in range(len(STEPS))]
    written = sum(tokens for _, tokens in checks)
    verdict_pass = len(plain.encode(PROBLEM, STEPS).input_ids)
    assert plain.count_tokens(PROBLEM, STEPS) == verdict_pass + written
    prompts = [len(tok(tok.apply_chat_template(plain._turns(PROBLEM, STEPS[: k + 1]), tokenize=False,
                                               add_generation_prompt=True), add_special_tokens=False)["input_ids"])
               for k in range(len(STEPS))]
    assert all(tokens > prompt for (_, tokens), prompt in zip(checks, prompts))  # read and written
    assert written <= sum(prompts) + 12 * len(STEPS)


def test_think_tokens_is_checked():
    from ttscale.errors import ConfigError

    with pytest.raises(ConfigError, match="verifier.think_tokens"):
        VerifierConfig(name="think_judge", think_tokens=0)


def test_beam_search_guided_by_the_thinking_judge_charges_its_checks(judge):
    """The search's budget counts every check the judge wrote for a problem, and its FLOPs price them."""
    from ttscale.backends.fake import FakeGenerator
    from ttscale.search import SearchSettings, build_strategy

    problems = [Problem(f"b{i}", f"What is {3 + i} + {4 + i}?", str(7 + 2 * i)) for i in range(2)]
    prompts = [f"Question: {p.question}\nAnswer:" for p in problems]
    generator = FakeGenerator()
    settings = SearchSettings(n=4, beam_width=2, temperature=0.8, step_delimiter="\n", max_step_tokens=16,
                              max_new_tokens=64, max_iterations=3, seed=3)
    results = build_strategy("beam_search").search(problems, prompts, generator, judge, settings)
    for p, r in zip(problems, results):
        assert r.error is None and len(r.completions) == 4
        checks = [tokens for (q, _), (_, tokens) in judge._checks.items() if q == p.question]
        assert checks and r.budget.verifier_tokens > sum(checks)  # the checks, plus the verdict passes
        b = r.budget
        policy = 2.0 * generator.n_params * (b.generated_tokens + b.prompt_tokens - b.prompt_tokens_reused)
        assert r.budget.flops == pytest.approx(policy + 2.0 * judge.n_params * r.budget.verifier_tokens)
