"""The server runs the adaptive strategies and returns the pick's confidence."""

from __future__ import annotations

import pytest

pytest.importorskip("openai")

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


@pytest.mark.parametrize("strategy", ["adaptive_consistency", "deepconf"])
def test_adaptive_strategies_are_served_with_the_picks_confidence(client, strategy):
    reply = client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": QUESTION}], max_tokens=64,
        extra_body={"ttscale": {"strategy": strategy, "n": 8, "return_candidates": True}},
    )
    (search,) = reply.model_extra["ttscale"]["results"]
    assert search["strategy"] == strategy and 1 <= len(search["candidates"]) <= 8
    picked = search["candidates"][search["selected"]]
    assert picked["dropped"] is None
    if strategy == "deepconf":  # deepconf records logprobs itself; the recipe's sampling.logprobs is 0
        assert search["confidence"] == picked["confidence"] and search["confidence"]["n_tokens"] == picked["n_tokens"]
    else:
        assert search["confidence"] is None
    assert reply.usage.completion_tokens == sum(c["n_tokens"] for c in search["candidates"])
