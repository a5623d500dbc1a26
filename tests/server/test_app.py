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
