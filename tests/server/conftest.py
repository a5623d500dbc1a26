"""A `ttscale serve` process on a free loopback port, shared by the HTTP tests of a module."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from ttscale.server.process import running_server, wait_healthy  # noqa: E402

API_KEY = "test-key-123"
MAX_BODY = 65536


@pytest.fixture(scope="session")
def fake_server():
    """serve_fake (fake policy + fake PRM, beam search) behind an API key, with a small body limit."""
    args = ["--api-key-env", "TTSCALE_TEST_API_KEY", "--max-body-bytes", str(MAX_BODY)]
    with running_server("serve_fake", args=args, env={"TTSCALE_TEST_API_KEY": API_KEY}) as srv:
        wait_healthy(srv.root, headers={"Authorization": f"Bearer {API_KEY}"})
        yield srv


@pytest.fixture
def client(fake_server):
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=fake_server.base_url, api_key=API_KEY, max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture
def http(fake_server):
    import httpx

    with httpx.Client(base_url=fake_server.root, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
        yield c
