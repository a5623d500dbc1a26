"""The http verifier's vllm_pooling dialect against a stand-in for `vllm serve <Qwen2.5-Math-PRM> --runner pooling`.

vLLM needs a GPU, so a FastAPI app stands in for its POST /pooling, modelled on vLLM's source:
- the request (vllm/entrypoints/pooling/pooling/protocol.py, pooling/base/protocol.py): a
  completion form {model?, input: str | list[str] | list[int] | list[list[int]], add_special_tokens
  (default true), use_activation, dimensions, encoding_format} or a chat form {messages,
  add_special_tokens (default false), add_generation_prompt (default false)}; unknown fields are
  accepted and ignored (OpenAIBaseModel allows extras), so a per-request `step_tag_id` does nothing:
  the step tag is a server setting (--pooler-config); `normalize` and `dimensions` are refused;
- the model (vllm/model_executor/models/qwen2_rm.py with StepPooler.extract_states in
  vllm/model_executor/layers/pooler): per-token 2-label logits, softmaxed unless use_activation is
  false; only the rows at the step tag when the server has a step_tag_id (v0.10 and older default
  to 151651), every token's row otherwise;
- the reply (vllm/entrypoints/pooling/pooling/serving.py): {"id": "pool-...", "object": "list",
  "created", "model", "data": [{"index", "object": "pooling", "data": rows}], "usage":
  {"prompt_tokens", "total_tokens", "completion_tokens": 0}}, usage summed over the request's items;
- errors: a prompt over max_model_len is a 400, an unknown model a 404, in OpenAI's error shape.
The model behind it is the tiny random Qwen2 token classifier of conftest.py, as in-process.
"""

# No `from __future__ import annotations`: FastAPI reads the stand-in route's annotations.

import time
import uuid

import pytest

from ttscale.config import VerifierConfig
from ttscale.errors import VerifierError
from ttscale.verifiers.http import HTTPVerifier
from ttscale.verifiers.qwen_prm import QwenPRM

fastapi = pytest.importorskip("fastapi")

from ttscale.server.process import serving_in_thread  # noqa: E402

SERVED = "Qwen/Qwen2.5-Math-PRM-7B"


def _error(status: int, message: str, kind: str, param: str | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status_code=status)


def vllm_pooling_standin(model, tokenizer, step_tag_id: int | None, max_model_len: int = 4096):
    import torch
    from fastapi import FastAPI, Request

    app = FastAPI()
    app.state.bodies, app.state.usage = [], []

    def prompts(body: dict) -> list[list[int]]:
        if "messages" in body:
            text = tokenizer.apply_chat_template(body["messages"], tokenize=False,
                                                 add_generation_prompt=body.get("add_generation_prompt", False))
            return [tokenizer.encode(text, add_special_tokens=body.get("add_special_tokens", False))]
        given = body["input"]
        if isinstance(given, str) or (given and isinstance(given[0], int)):
            given = [given]
        special = body.get("add_special_tokens", True)
        return [tokenizer.encode(x, add_special_tokens=special) if isinstance(x, str) else list(x) for x in given]

    @app.post("/pooling")
    async def pooling(request: Request):
        body = await request.json()
        app.state.bodies.append(body)
        if body.get("model") not in (None, SERVED):
            return _error(404, f"The model `{body['model']}` does not exist.", "NotFoundError", "model")
        if "normalize" in body:
            return _error(400, "Parameter `normalize` was removed; use `use_activation` instead.", "BadRequestError")
        if body.get("dimensions") is not None:
            return _error(400, "dimensions is currently not supported", "BadRequestError")
        ids = prompts(body)
        for x in ids:
            if len(x) > max_model_len:
                return _error(400, f"This model's maximum context length is {max_model_len} tokens. However, your "
                              f"request has {len(x)} input tokens. Please reduce the length of the input messages.",
                              "BadRequestError")
        data = []
        for index, x in enumerate(ids):
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([x])).logits[0].float()
            rows = logits.softmax(-1) if body.get("use_activation", True) is not False else logits
            if step_tag_id is not None:
                rows = rows[torch.tensor(x) == step_tag_id]
            data.append({"index": index, "object": "pooling", "data": rows.tolist()})
        n = sum(len(x) for x in ids)
        app.state.usage.append(n)
        return {"id": f"pool-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": SERVED,
                "data": data, "usage": {"prompt_tokens": n, "total_tokens": n, "completion_tokens": 0,
                                        "prompt_tokens_details": None}}

    return app


@pytest.fixture
def in_process(qwen_token_classifier):
    model, tok = qwen_token_classifier
    return QwenPRM(model=model, tokenizer=tok, kv_cache_bytes=0)


def _remote(url: str, tok, **kw) -> HTTPVerifier:
    return HTTPVerifier(VerifierConfig(name="http", api="vllm_pooling", base_url=url, **kw), tokenizer=tok,
                        backoff_s=0.01)


@pytest.mark.parametrize("tagged", [False, True], ids=["every-token-row", "step-tag-rows"])
def test_step_scores_and_tokens_are_the_in_process_qwen_prms(qwen_token_classifier, in_process, sample, tagged):
    model, tok = qwen_token_classifier
    app = vllm_pooling_standin(model, tok, in_process.separator_id if tagged else None)
    problems, steps = sample
    with serving_in_thread(app) as url:
        remote = _remote(url, tok, items_per_request=1, max_concurrency=2)
        assert remote.n_params == 0  # vLLM does not say; verifier.n_params sets it for FLOPs
        scores = remote.score(problems, steps)
    assert scores == [pytest.approx(row, abs=1e-5) for row in in_process.score(problems, steps)]
    counts = [remote.count_tokens(p, s) for p, s in zip(problems, steps)]
    assert counts == [in_process.count_tokens(p, s) for p, s in zip(problems, steps)]
    assert sorted(counts) == sorted(app.state.usage[1:])  # one item per request: vLLM's own usage, item by item


def test_requests_carry_the_in_process_token_ids_in_batches(qwen_token_classifier, in_process, sample):
    model, tok = qwen_token_classifier
    app = vllm_pooling_standin(model, tok, None)
    problems, steps = sample
    with serving_in_thread(app) as url:
        _remote(url, tok, items_per_request=2).score(problems * 2, steps * 2)
        # the ids are what vLLM's own chat path makes of the same conversation (template, no added specials)
        chat = {"messages": in_process.messages(problems[0], steps[0])}
        import httpx

        rows = httpx.post(f"{url}/pooling", json=chat).json()["data"][0]["data"]
    assert [len(b["input"]) for b in app.state.bodies[1:-1]] == [2, 2]  # after the one-item probe
    sent = [ids for b in app.state.bodies[1:-1] for ids in b["input"]]
    assert sent == [in_process.encode(p, s).input_ids for p, s in zip(problems * 2, steps * 2)]
    assert len(rows) == len(in_process.encode(problems[0], steps[0]).input_ids)
    assert all("model" not in b for b in app.state.bodies)  # vLLM then uses the model it serves


def test_a_prompt_over_max_model_len_is_one_clear_line_not_retried(qwen_token_classifier, sample):
    model, tok = qwen_token_classifier
    app = vllm_pooling_standin(model, tok, None, max_model_len=16)
    problems, steps = sample
    with serving_in_thread(app) as url:
        with pytest.raises(VerifierError, match=r"refused with HTTP 400: This model's maximum context length is 16"):
            _remote(url, tok).score(problems[:1], steps[:1])
    assert len(app.state.bodies) == 2  # the probe, then the one refused request


def test_a_server_pooling_at_another_step_tag_is_caught(qwen_token_classifier, sample):
    model, tok = qwen_token_classifier
    app = vllm_pooling_standin(model, tok, step_tag_id=tok.eos_token_id)  # e.g. a Math-Shepherd pooler config
    problems, steps = sample
    with serving_in_thread(app) as url:
        # three <|im_end|> rows for three steps would pass for step scores: the probe tells them apart
        with pytest.raises(VerifierError, match=r"/pooling pooled 0 rows for a probe of \d+ tokens holding one step "
                                                r"tag \(<extra_0>, id \d+\); serve the PRM with its STEP pooler"):
            _remote(url, tok).score(problems[:1], steps[:1])
    assert len(app.state.bodies) == 1


def test_vllm_pooling_needs_the_prm_named_for_its_tokenizer():
    from ttscale.errors import ConfigError

    with pytest.raises(ConfigError, match="verifier.api=vllm_pooling needs verifier.model"):
        HTTPVerifier(VerifierConfig(name="http", api="vllm_pooling", base_url="http://127.0.0.1:1"))
