"""One contract, every registered verifier: shapes, range, determinism, batching, causality.

Each name in the registry is built here: model-free ones through the registry itself, model-based
ones on a tiny random model of their family's architecture (fixtures in conftest.py). A new
model-free verifier runs this suite the moment it is registered; a new model-based one fails its
build until it is given a tiny model below.
"""

from __future__ import annotations

import pytest

from ttscale.config import VerifierConfig
from ttscale.types import Problem
from ttscale.verifiers import VERIFIERS, Verifier, build_verifier

PROBLEMS = [Problem("c1", "Tom has 3 apples and buys 4 more. How many apples does he have?", "7"),
            Problem("c2", "What is 6 times 7?", "42")]
STEPS = [["Tom has 3 apples.", "He buys 4 more, so 3 + 4 = 7.", "The answer is \\boxed{7}."],
         ["6 * 7 = 42.", "So the answer is \\boxed{42}."]]


def _trained_prm(request):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForTokenClassification

    from ttscale.verifiers.trained_prm import TrainedPRM

    tok = AutoTokenizer.from_pretrained(request.getfixturevalue("smollm2_dir"))
    torch.manual_seed(5)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=2)
    return TrainedPRM(VerifierConfig(name="trained_prm"), model=LlamaForTokenClassification(cfg).eval(), tokenizer=tok)


def _built(name, request):
    from ttscale.verifiers.lm_judge import LMJudge
    from ttscale.verifiers.math_shepherd import MathShepherdPRM
    from ttscale.verifiers.qwen_prm import QwenPRM
    from ttscale.verifiers.rlhflow import RLHFlowPRM
    from ttscale.verifiers.skywork import SkyworkPRM
    from ttscale.verifiers.think_judge import ThinkingJudge

    tiny = {
        "rlhflow": lambda: RLHFlowPRM(model=(m := request.getfixturevalue("llama3_prm"))[0], tokenizer=m[1]),
        "math_shepherd": lambda: MathShepherdPRM(model=(m := request.getfixturevalue("mistral_prm"))[0], tokenizer=m[1]),
        "qwen_prm": lambda: QwenPRM(model=(m := request.getfixturevalue("qwen_token_classifier"))[0], tokenizer=m[1]),
        "skywork": lambda: SkyworkPRM(model=(m := request.getfixturevalue("qwen_value_model"))[0], tokenizer=m[1],
                                      v_head=m[2]),
        "lm_judge": lambda: LMJudge(model=(m := request.getfixturevalue("smol_judge"))[0], tokenizer=m[1]),
        "think_judge": lambda: ThinkingJudge(VerifierConfig(name="think_judge", think_tokens=8),
                                             model=(m := request.getfixturevalue("smol_judge"))[0], tokenizer=m[1]),
        "trained_prm": lambda: _trained_prm(request),
        "http": lambda: request.getfixturevalue("http_rules"),
    }
    built = tiny[name]() if name in tiny else build_verifier(VerifierConfig(name=name))
    return RecordedRows(built) if getattr(built, "reads_logprobs", False) else built


def _rows(step: str) -> list[list[float]]:
    """Top-4 log-probability rows for a step's words, drawn from its text: the same step, the same rows."""
    import math
    import random

    rng = random.Random(step)
    return [sorted((math.log(rng.uniform(1e-3, 1.0)) for _ in range(4)), reverse=True) for _ in step.split()]


class RecordedRows:
    """A verifier that reads what the policy recorded (`reads_logprobs`), given rows as a search would pass them,
    so the text-only contract below holds it to the same shapes, range, batching and causality."""

    reads_logprobs = True

    def __init__(self, inner):
        self.inner, self.name, self.n_params = inner, inner.name, inner.n_params

    def score(self, problems, steps):
        return self.inner.score_logprobs(problems, steps, [[_rows(x) for x in item] for item in steps])

    def count_tokens(self, problem, steps):
        return self.inner.count_tokens(problem, steps)


@pytest.fixture(params=VERIFIERS.names())
def verifier(request):
    return request.param, _built(request.param, request)


def test_follows_the_protocol_one_score_in_0_1_per_step(verifier):
    name, v = verifier
    assert isinstance(v, Verifier) and v.name == name and v.n_params >= 0
    scores = v.score(PROBLEMS + PROBLEMS[:1], [*STEPS, []])
    assert [len(s) for s in scores] == [3, 2, 0]
    assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for row in scores for x in row)
    tokens = v.count_tokens(PROBLEMS[0], STEPS[0])
    assert isinstance(tokens, int) and (tokens > 0 if v.n_params else tokens >= 0)


def test_deterministic_and_independent_of_the_batch(verifier):
    _, v = verifier
    together = v.score(PROBLEMS, STEPS)
    alone = [v.score([p], [s])[0] for p, s in zip(PROBLEMS, STEPS)]
    assert together == [pytest.approx(row, abs=1e-5) for row in alone]
    assert v.score(PROBLEMS, STEPS) == [pytest.approx(row, abs=1e-5) for row in together]


def test_a_steps_score_does_not_change_when_later_steps_are_appended(verifier):
    """Beam search prunes on a prefix's scores (the Verifier protocol): causal scorers keep them."""
    _, v = verifier
    full = v.score(PROBLEMS, STEPS)
    prefixes = v.score(PROBLEMS, [s[:1] for s in STEPS])
    assert [row[:1] for row in full] == [pytest.approx(row, abs=1e-5) for row in prefixes]


def test_the_same_step_scores_and_tokens_through_serve_verifier(verifier):
    """Served by `ttscale serve-verifier`'s app on a loopback socket, a verifier scores as it does in-process."""
    pytest.importorskip("fastapi")
    from ttscale.server.process import verifier_in_thread
    from ttscale.verifiers.http import HTTPVerifier

    _, v = verifier
    if getattr(v, "reads_logprobs", False):
        pytest.skip("it scores the policy's recorded log-probabilities, which a request of text does not carry")
    here = v.score(PROBLEMS, STEPS)
    with verifier_in_thread(v) as url:
        remote = HTTPVerifier(VerifierConfig(name="http", base_url=url))
        assert remote.n_params == v.n_params
        assert remote.score(PROBLEMS, STEPS) == [pytest.approx(row, abs=1e-5) for row in here]
        # the served verifier's own count for what it just ran (a PRM's cache may have run only part of it)
        assert [remote.count_tokens(p, s) for p, s in zip(PROBLEMS, STEPS)] == [
            v.count_tokens(p, s) for p, s in zip(PROBLEMS, STEPS)]
        remote.close()
