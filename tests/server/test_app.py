"""The server's edges that need no HTTP: its optional dependencies."""

from __future__ import annotations

import pytest


def test_serve_without_the_server_extra_names_the_install(monkeypatch):
    import sys

    from ttscale.errors import MissingDependencyError
    from ttscale.server.app import _import_server

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingDependencyError, match=r"ttscale\[server\]"):
        _import_server()


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("myhost.example", False)],
)
def test_only_loopback_hosts_skip_the_no_api_key_warning(host, loopback):
    from ttscale.server.app import is_loopback

    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "field, value",
    [("request_timeout_s", float("inf")), ("request_timeout_s", 0.0), ("batch_window_ms", float("nan")),
     ("max_request_tokens", 0), ("max_request_steps", -1)],
)
def test_serve_limits_refuse_non_finite_and_non_positive_values(field, value):
    from ttscale.errors import ConfigError
    from ttscale.server.config import ServeConfig

    with pytest.raises(ConfigError, match=f"serve.{field}="):
        ServeConfig(**{field: value})
