"""Recipes that are valid YAML but not a recipe: keys that are not strings, aliases that expand
exponentially, nesting deep enough to overflow the stack; in a recipe, a --set value or a run's config.yaml."""

from __future__ import annotations

import time

import pytest

from ttscale.data.results import RunDir
from ttscale.errors import ConfigError, RunDirError
from ttscale.recipe import load_config


def _laughs(levels: int = 9, width: int = 10) -> str:
    """Under a kilobyte that expands to width**levels values."""
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines)


NOT_STRING_KEYS = ["1: {}", "null: {}", "true: {}", "1.5: {}", "2024-01-01: {}", "model: {}\n~: {}"]


@pytest.mark.parametrize("text", NOT_STRING_KEYS)
def test_a_top_level_key_that_is_not_a_string_is_named(tmp_path, text):
    f = tmp_path / "r.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=r"top-level key .* is not a section name; accepted: model"):
        load_config(f)


@pytest.mark.parametrize("text", NOT_STRING_KEYS + ["search: {1: 2}"])
def test_a_run_config_whose_keys_are_not_strings_is_corrupt(tmp_path, text):
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(RunDirError, match="config.yaml is corrupt"):
        RunDir(tmp_path).config()


HOSTILE = {
    # under a field that takes any mapping, so nothing but its size can refuse it
    "billion_laughs": ("prompt:\n  chat_template_kwargs:\n    " + _laughs().replace("\n", "\n    "), "expands to over"),
    "deep_nesting": ("x: " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep_but_parseable": ("x: " + "[" * 150 + "]" * 150, "nested too deeply"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_recipe_that_expands_or_nests_without_bound_is_refused_fast(tmp_path, name):
    text, reason = HOSTILE[name]
    f = tmp_path / "r.yaml"
    f.write_text(text)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=reason):
        load_config(f)
    assert time.monotonic() - started < 10


def _flow_laughs(levels: int = 6, width: int = 10) -> str:
    """The same bomb on one line, as a shell passes it to --set."""
    items = ["&a0 [lol]"] + [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "[" + ", ".join(items) + "]"


SET_VALUES = {
    "billion_laughs": (_flow_laughs(), "expands to over"),
    "deep_nesting": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep_but_parseable": ("[" * 150 + "]" * 150, "nested too deeply"),
}


@pytest.mark.parametrize("name", sorted(SET_VALUES))
def test_a_set_value_that_expands_or_nests_without_bound_is_refused_fast(name):
    value, reason = SET_VALUES[name]
    with pytest.raises(ConfigError, match=reason):
        load_config(None, [f"search.n={value}"])


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_run_config_that_expands_or_nests_without_bound_is_corrupt(tmp_path, name):
    text, _ = HOSTILE[name]
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(RunDirError, match="config.yaml is corrupt"):
        RunDir(tmp_path).config()
