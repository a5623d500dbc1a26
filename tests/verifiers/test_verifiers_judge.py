"""lm_judge for real, on the embedded SmolLM2 (the default judge)."""

from __future__ import annotations

import pytest

from ttscale.config import VerifierConfig
from ttscale.types import Problem
from ttscale.verifiers import build_verifier


@pytest.fixture(scope="module")
def judge():
    return build_verifier(VerifierConfig(name="lm_judge", device="cpu"))


@pytest.mark.slow  # ~5 s alone, over 10 s on a busy 2-core machine (loading 135M params in float32)
def test_lm_judge_scores_with_smollm2(judge):
    problem = Problem("a", "Tom has 5 apples. He buys 4 more. How many apples does he have now?", "9")
    right = ["Step 1: Tom buys 4 more apples, so 5 + 4 = 9.", "Answer: \\boxed{9}"]
    wrong = ["Step 1: Tom buys 4 more apples, so 5 + 4 = 12.", "Answer: \\boxed{12}"]
    scores = judge.score([problem, problem], [right, wrong])
    assert [len(s) for s in scores] == [2, 2]
    assert all(0.0 < x < 1.0 for row in scores for x in row)
    assert judge.score([problem], [right[:1]])[0] == pytest.approx(scores[0][:1], abs=1e-4)
    assert judge.n_params > 100_000_000  # SmolLM2-135M
    # fully cached now: count_tokens reports only the tokens actually run
    assert judge.count_tokens(problem, right[:1]) == 1
    assert len(judge.encode(problem, right[:1]).input_ids) > 20
