"""The OpenAI backend against a real third-party server: `transformers serve` on loopback.

The served model is a tiny Llama of the real architecture with SmolLM2's tokenizer, wired by hand
into a unigram model (every layer adds nothing, so the next-token distribution is the same at every
position): it writes short "words", the step delimiter "\\n\\n" about one token in twelve and EOS
now and then. That keeps each request to milliseconds while the server does everything it does
for a real model: its own tokenization, stop strings, seeding, and the fields it ignores.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("httpx")
transformers = pytest.importorskip("transformers")
if not transformers.utils.import_utils.is_serve_available():
    pytest.skip("transformers serve needs fastapi, uvicorn, pydantic and openai", allow_module_level=True)

from ttscale.backends.openai_http import OpenAIGenerator  # noqa: E402
from ttscale.config import ModelConfig  # noqa: E402
from ttscale.data.results import read_results  # noqa: E402
from ttscale.errors import ConfigError  # noqa: E402
from ttscale.runner import run  # noqa: E402
from ttscale.types import SamplingParams  # noqa: E402

WORDS = (" 1", " +", " 2", " =", " 3", " Step", ".")
DELIMITER = "\n\n"


def _unigram_llama(directory):
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    from ttscale.models.loading import resolve_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_source("embedded:smollm2", None)[0])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    with torch.no_grad():
        # hidden state = ones at every position: layers add nothing, every token embeds as ones
        model.model.embed_tokens.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        head = model.lm_head.weight
        head.zero_()  # logit of a row = its sum: 0 for the 49k others
        logits = {tokenizer.encode(w, add_special_tokens=False)[-1]: 14.0 for w in WORDS}
        logits[tokenizer.encode(DELIMITER, add_special_tokens=False)[-1]] = 13.5
        logits[tokenizer.eos_token_id] = 11.0
        for token, logit in logits.items():
            head[token].fill_(logit / config.hidden_size)
    # As the embedded SmolLM2's: no do_sample, so the server is greedy unless a request says otherwise.
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, model dir) of `transformers serve` running the unigram Llama."""
    import httpx

    directory = tmp_path_factory.mktemp("unigram-llama")
    _unigram_llama(directory)
    port = _free_port()
    log = open(directory / "serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", str(directory),
         "--port", str(port), "--host", "127.0.0.1", "--device", "cpu", "--dtype", "float32"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {(directory / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not come up in 180 s")
        yield f"http://127.0.0.1:{port}/v1", str(directory)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def generator(served):
    url, model = served
    return OpenAIGenerator(ModelConfig(backend="openai", base_url=url, name_or_path=model, max_concurrency=4))


def test_the_probe_reads_what_transformers_serve_honours(generator):
    caps = generator.capabilities
    assert caps.completions and caps.chat
    assert caps.samples and dict(caps.extra_body) == {"generation_config": '{"do_sample": true}'}
    assert not caps.n and not caps.logprobs and not caps.stop_reason
    assert caps.stop == "kept" and caps.seed and caps.usage
    assert not caps.continue_final_message  # it starts a new assistant turn instead
    assert generator.n_params > 0  # read from the served model's config, so FLOPs count


def test_n_samples_are_n_requests_seeded_as_vllm_seeds_children(generator):
    prompt = "Question: 1 + 2?\nSolution:\n"
    together = generator.generate([prompt], [SamplingParams(max_new_tokens=12, n=3, seed=40, stop=(DELIMITER,))])[0]
    alone = [generator.generate([prompt], [SamplingParams(max_new_tokens=12, seed=40 + k, stop=(DELIMITER,))])[0][0]
             for k in range(3)]
    assert len(together) == 3 and [g.text for g in together] == [g.text for g in alone]
    assert len({g.text for g in together}) > 1  # it samples: the extension turned do_sample on


def test_stop_strings_are_kept_exactly_once_and_tokens_are_counted(generator):
    params = [SamplingParams(max_new_tokens=40, n=8, seed=7, stop=(DELIMITER,))]
    gens = generator.generate(["Question: 1 + 2?\nSolution:\n"], params)[0]
    stopped = [g for g in gens if g.finish_reason == "stop"]
    assert stopped, "the unigram model writes the delimiter about one token in twelve"
    assert all(g.text.endswith(DELIMITER) and g.text.count(DELIMITER) == 1 for g in stopped)
    assert all(DELIMITER not in g.text for g in gens if g.finish_reason != "stop")
    for g in gens:  # one request per sample: the server's own usage, which counts what it generated
        assert 0 < g.n_tokens <= 40 and g.n_tokens >= generator.count_tokens(g.text)


def _recipe(fake_cfg, served, *more):
    url, model = served
    return fake_cfg("model.backend=openai", f"model.base_url={url}", f"model.name_or_path={model}",
                    "dataset.limit=2", "sampling.max_new_tokens=24", "sampling.max_step_tokens=12", *more)


def test_best_of_n_runs_over_transformers_serve(fake_cfg, served, tmp_path):
    outcome = run(_recipe(fake_cfg, served, "search.strategy=best_of_n", "search.n=4"), progress=False)
    results = read_results(outcome.run_dir)
    assert len(results) == 2 and all(r.error is None and len(r.completions) == 4 for r in results)
    assert all(c.n_tokens > 0 for r in results for c in r.completions)
    assert all(r.budget.flops > 0 for r in results)
    assert outcome.metrics["server"]["n"] is False and outcome.metrics["server"]["stop"] == "kept"


def test_beam_search_runs_over_transformers_serve_with_one_delimiter_per_step(fake_cfg, served):
    cfg = _recipe(fake_cfg, served, "search.strategy=beam_search", "search.n=4", "search.beam_width=2",
                  "verifier.name=fake", "search.max_iterations=3")
    results = read_results(run(cfg, progress=False).run_dir)
    assert len(results) == 2 and all(r.error is None and len(r.completions) == 4 for r in results)
    steps = [s for r in results for c in r.completions for s in c.steps]
    assert steps and all(DELIMITER * 2 not in s and not s.startswith(DELIMITER) for s in steps)


def test_whole_solutions_run_over_chat_and_step_wise_search_is_refused_in_one_line(fake_cfg, served):
    outcome = run(_recipe(fake_cfg, served, "model.api=chat", "search.strategy=best_of_n", "search.n=2",
                          "prompt.mode=chat"), progress=False)
    results = read_results(outcome.run_dir)
    assert all(r.error is None and len(r.completions) == 2 for r in results)
    beam = _recipe(fake_cfg, served, "model.api=chat", "search.strategy=beam_search", "search.n=2",
                   "search.beam_width=2", "verifier.name=fake", "output.dir=" + str(outcome.run_dir) + "-beam")
    with pytest.raises(ConfigError, match="continue_final_message"):
        run(beam, progress=False)
