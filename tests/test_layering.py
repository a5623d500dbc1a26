"""Data flows one way (docs/DESIGN.md): no stage imports a later one, even lazily inside a function."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ttscale"

# package -> the packages it must never import (a later stage, or a sibling it should not own)
FORBIDDEN = {
    "types": {"config", "data", "backends", "models", "verifiers", "search", "grading", "eval", "server", "learn"},
    "models": {"backends", "verifiers", "search", "eval", "server", "learn"},
    "grading": {"backends", "models", "verifiers", "search", "eval", "server", "learn"},
    "data": {"backends", "models", "verifiers", "search", "eval", "server", "learn"},
    "backends": {"verifiers", "search", "eval", "server", "learn"},
    "verifiers": {"backends", "search", "eval", "server", "learn"},
    "search": {"eval", "server", "learn"},
    "eval": {"search", "server", "learn", "backends"},
}


def imports_of(path: Path) -> set[str]:
    """The ttscale packages a module imports, at any depth (a lazy import inside a function counts)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "ttscale" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_stage_imports_a_later_one(package):
    files = [SRC / f"{package}.py"] if (SRC / f"{package}.py").exists() else sorted((SRC / package).rglob("*.py"))
    assert files
    bad = {f.relative_to(SRC).as_posix(): sorted(imports_of(f) & FORBIDDEN[package]) for f in files}
    assert not {f: b for f, b in bad.items() if b}


def test_no_module_over_400_lines():
    long = {p.relative_to(SRC).as_posix(): n for p in SRC.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long
