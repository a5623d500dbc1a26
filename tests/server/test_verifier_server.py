"""`ttscale serve-verifier` as a child process on loopback: auth, limits, batching, and a beam search through it."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ttscale.cli import resolve_recipe
from ttscale.config import VerifierConfig
from ttscale.recipe import load_config
from ttscale.runner import run
from ttscale.server.config import VerifierServeConfig
from ttscale.server.metrics import parse_metrics
from ttscale.server.process import running_server, verifier_in_thread, wait_healthy
from ttscale.verifiers import build_verifier

KEY_ENV, KEY = "TTSCALE_TEST_VERIFIER_KEY", "verifier-key-456"
AUTH = {"Authorization": f"Bearer {KEY}"}
BEAM = resolve_recipe("cpu_arithmetic_beam")
ITEM = {"problem": {"id": "p", "question": "What is 6 times 7?", "answer": "42"}, "steps": ["6 * 7 = 42.", "\\boxed{42}"]}


@pytest.fixture(scope="module")
def rules_server():
    """serve-verifier over the arithmetic rules, behind a key, with small request limits."""
    args = ["--api-key-env", KEY_ENV, "--max-items", "4", "--max-body-bytes", "4096"]
    with running_server("cpu_arithmetic_beam", ["verifier.name=arithmetic_rules"], args=args, env={KEY_ENV: KEY},
                        command="serve-verifier") as srv:
        wait_healthy(srv.root, headers=AUTH)
        yield srv


def test_the_key_is_required_on_every_route(rules_server):
    root = rules_server.root
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert httpx.post(f"{root}/v1/verify", json={"items": [ITEM]}, headers=headers).status_code == 401
        assert httpx.get(f"{root}/health", headers=headers).status_code == 401
    reply = httpx.post(f"{root}/v1/verify", json={"items": [ITEM]}, headers=AUTH).json()
    assert reply["model"] == "arithmetic_rules" and reply["data"][0]["scores"] == [1.0, 1.0]


@pytest.mark.parametrize("body,status,says", [
    ({"items": [ITEM] * 5}, 400, "items: must hold 1..4 items (the server's max_items), got 5"),
    ({"items": [{**ITEM, "steps": ["x" * 5000]}]}, 413, "larger than the server's max_body_bytes=4096"),
    ({"items": [ITEM], "model": "other"}, 404, "the model 'other' does not exist"),
    ({"items": [{"problem": {"question": 1}, "steps": "a"}]}, 400, "items[0].problem.question: Input should be a valid string"),
])
def test_bad_requests_are_refused_in_one_line(rules_server, body, status, says):
    r = httpx.post(f"{rules_server.root}/v1/verify", json=body, headers=AUTH)
    assert r.status_code == status and says in r.json()["error"]["message"]


class SlowRules:
    """The arithmetic rules, taking 0.5 s a call: requests arriving meanwhile queue, and are merged."""

    def __init__(self) -> None:
        self.inner = build_verifier(VerifierConfig(name="arithmetic_rules"))
        self.name, self.n_params = self.inner.name, self.inner.n_params

    def score(self, problems, steps):
        time.sleep(0.5)
        return self.inner.score(problems, steps)

    def count_tokens(self, problem, steps):
        return self.inner.count_tokens(problem, steps)


def test_concurrent_requests_share_verifier_calls():
    with verifier_in_thread(SlowRules(), VerifierServeConfig(batch_window_ms=50)) as url:
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda _: httpx.post(f"{url}/v1/verify", json={"items": [ITEM]}).json(), range(6)))
        metrics = parse_metrics(httpx.get(f"{url}/metrics").text)
    assert all(r["data"][0]["scores"] == [1.0, 1.0] for r in replies)
    assert metrics["ttscale_verifier_requests_total"] == 6 and metrics["ttscale_verifier_calls_total"] <= 3


def _rows(run_dir) -> list[dict]:
    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "wall_time_s"}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return [strip(json.loads(line)) for line in (run_dir / "completions.jsonl").read_text().splitlines()]


def test_a_beam_search_through_serve_verifier_writes_the_same_completions(rules_server, tmp_path, monkeypatch):
    """cpu_arithmetic_beam with the arithmetic rules in-process, then reached over HTTP: the same rows."""
    monkeypatch.setenv(KEY_ENV, KEY)
    small = ["model.backend=fake", "dataset.limit=4", "search.problems_per_batch=2", "verifier.name=arithmetic_rules"]
    here = run(load_config(BEAM, [*small, f"output.dir={tmp_path / 'here'}"]),
               progress=False)
    remote_cfg = load_config(BEAM, [
        *small, "verifier.name=http", f"verifier.base_url={rules_server.base_url}", f"verifier.api_key_env={KEY_ENV}",
        "verifier.items_per_request=3", f"output.dir={tmp_path / 'remote'}"])
    before = parse_metrics(httpx.get(f"{rules_server.root}/metrics", headers=AUTH).text)
    there = run(remote_cfg, progress=False)
    after = parse_metrics(httpx.get(f"{rules_server.root}/metrics", headers=AUTH).text)
    rows = _rows(here.run_dir)
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    assert _rows(there.run_dir) == rows
    assert any(c["step_scores"] for r in rows for c in r["completions"])
    assert after["ttscale_verifier_requests_total"] > before["ttscale_verifier_requests_total"]


def test_the_served_fake_prms_tokens_count_in_a_runs_budget(tmp_path):
    """A verifier that counts tokens (the fake PRM counts words): the remote run's budget holds the same counts."""
    from ttscale.verifiers.fake import FakeVerifier

    small = ["model.backend=fake", "dataset.limit=2", "search.problems_per_batch=2", "verifier.name=fake"]
    here = run(load_config(BEAM, [*small, f"output.dir={tmp_path / 'a'}"]),
               progress=False)
    with verifier_in_thread(FakeVerifier()) as url:
        there = run(load_config(BEAM, [
            *small, "verifier.name=http", f"verifier.base_url={url}", f"output.dir={tmp_path / 'b'}"]), progress=False)
    budgets = [(r["budget"]["verifier_tokens"], r["budget"]["flops"]) for r in _rows(here.run_dir)]
    assert [(r["budget"]["verifier_tokens"], r["budget"]["flops"]) for r in _rows(there.run_dir)] == budgets
    assert all(tokens > 0 and flops > 0 for tokens, flops in budgets)
