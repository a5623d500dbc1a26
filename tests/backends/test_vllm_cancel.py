"""The vLLM backend aborts a cancelled prompt's requests between engine steps, checked against a stand-in
engine (vLLM needs a GPU) that steps as vLLM's does."""

from __future__ import annotations

import sys
import threading
import types
from types import SimpleNamespace

import pytest

from ttscale.config import ModelConfig
from ttscale.types import SamplingParams

PROMPTS = ["Question: 3 + 4?\n", "Question: 6 * 7?\n"]


class SteppedEngine:
    """vLLM's LLMEngine as `LLM._run_engine` drives it (vllm/v1/engine/llm_engine.py): `add_request` queues
    one request, each `step()` advances every unfinished request by one token and returns those that finished
    (RequestOutputKind.FINAL_ONLY), `abort_request` drops requests without an output, and
    `has_unfinished_requests` says whether any is left. A request's text is the stand-in LLM's for that seed,
    so a request seeded s + k samples what child k of an n-request seeded s does."""

    def __init__(self, llm, at_step=None) -> None:
        self.llm, self.at_step = llm, at_step or (lambda step: None)
        self.live: dict[str, list] = {}
        self.steps, self.aborted = 0, []

    def add_request(self, request_id, prompt, params) -> None:
        assert params.n == 1 and params.output_kind == "FINAL_ONLY"
        self.live[request_id] = [self.llm._child(prompt["prompt_token_ids"], params, 0), 0]

    def has_unfinished_requests(self) -> bool:
        return bool(self.live)

    def abort_request(self, request_ids, internal=False) -> None:
        self.aborted.extend(request_ids)
        for rid in request_ids:
            self.live.pop(rid, None)

    def step(self):
        self.steps += 1
        self.at_step(self.steps)
        out = []
        for rid, state in list(self.live.items()):
            state[1] += 1
            if state[1] >= max(1, len(state[0].token_ids)):
                del self.live[rid]
                out.append(SimpleNamespace(request_id=rid, finished=True, outputs=[state[0]]))
        return out


@pytest.fixture
def vllm_generator(stand_in_vllm, monkeypatch):
    from ttscale.backends.vllm import VLLMGenerator

    sampling = types.ModuleType("vllm.sampling_params")
    sampling.RequestOutputKind = SimpleNamespace(FINAL_ONLY="FINAL_ONLY")
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    return VLLMGenerator(ModelConfig(backend="vllm"))


def _params(n: int) -> list[SamplingParams]:
    return [SamplingParams(temperature=0.8, max_new_tokens=64, n=n, seed=11 + 100 * i) for i in range(len(PROMPTS))]


@pytest.mark.parametrize("cancel", [(), (0,), (0, 1)], ids=["none", "first", "both"])
@pytest.mark.parametrize("n", [1, 3])
def test_a_cancelled_prompts_requests_are_aborted_between_steps(vllm_generator, n, cancel):
    gen = vllm_generator
    whole = gen.generate(PROMPTS, _params(n))
    flags = [threading.Event() for _ in PROMPTS]

    def at_step(step):
        if step == 3:
            for i in cancel:
                flags[i].set()

    engine = SteppedEngine(gen.llm, at_step)
    gen.llm.llm_engine = engine
    out = gen.generate_cancellable(PROMPTS, _params(n), flags)
    assert [len(row) for row in out] == [n, n]
    for i in range(len(PROMPTS)):
        if i in cancel:
            assert all(g.n_tokens == 0 and g.finish_reason == "length" for g in out[i])
        else:
            assert out[i] == whole[i]  # each sample its own request seeded seed + k: the samples of `generate`
    assert len(engine.aborted) == n * len(cancel) and len(set(engine.aborted)) == len(engine.aborted)
    if len(cancel) == len(PROMPTS):
        assert engine.steps == 3  # aborted before step 4, and nothing was left to step
    else:
        assert engine.steps > 3


def test_without_flags_it_is_generate(vllm_generator):
    gen = vllm_generator
    gen.llm.llm_engine = SteppedEngine(gen.llm)
    assert gen.generate_cancellable(PROMPTS, _params(2), [None, None]) == gen.generate(PROMPTS, _params(2))
    assert gen.llm.llm_engine.steps == 0  # LLM.generate's own loop, as ever
