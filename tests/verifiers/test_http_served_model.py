"""A real model behind `ttscale serve-verifier`: the tiny random Qwen2 PRM of conftest.py, saved, served by the CLI."""

from __future__ import annotations

import pytest

from ttscale.config import VerifierConfig
from ttscale.verifiers.http import HTTPVerifier
from ttscale.verifiers.qwen_prm import QwenPRM

pytest.importorskip("fastapi")

from ttscale.server.process import running_server, wait_healthy  # noqa: E402


@pytest.mark.slow
def test_a_tiny_qwen_prm_served_by_the_cli_scores_as_in_process(qwen_token_classifier, sample, tmp_path):
    model, tok = qwen_token_classifier
    model.save_pretrained(tmp_path / "prm")
    tok.save_pretrained(tmp_path / "prm")
    here = QwenPRM(model=model, tokenizer=tok, kv_cache_bytes=0)
    problems, steps = sample
    overrides = ["verifier.name=qwen_prm", f"verifier.model={tmp_path / 'prm'}", "verifier.device=cpu",
                 "verifier.dtype=float32", "verifier.kv_cache_mb=0"]
    with running_server("cpu_arithmetic_beam", overrides, command="serve-verifier") as srv:
        wait_healthy(srv.root)
        remote = HTTPVerifier(VerifierConfig(name="http", base_url=srv.base_url, items_per_request=1))
        assert remote.n_params == here.n_params > 0
        assert remote.score(problems, steps) == [pytest.approx(row, abs=1e-5) for row in here.score(problems, steps)]
        assert [remote.count_tokens(p, s) for p, s in zip(problems, steps)] == [
            here.count_tokens(p, s) for p, s in zip(problems, steps)]
        remote.close()
