import pytest

from ttscale.cli import RECIPES_DIR
from ttscale.config import RunConfig
from ttscale.errors import ConfigError
from ttscale.recipe import load_config


def test_overrides_are_typed():
    cfg = load_config(None, ["search.n=8", "dataset.levels=[1, 2]", "sampling.temperature=0", "output.save_trees=true"])
    assert cfg.search.n == 8 and cfg.dataset.levels == [1, 2]
    assert cfg.sampling.temperature == 0.0 and cfg.output.save_trees is True


@pytest.mark.parametrize(
    "override, fragment",
    [
        (["search.nn=3"], "unknown key 'search.nn' (did you mean 'n'?)"),
        (["serch.n=3"], "unknown section 'serch' (did you mean 'search'?)"),
        (["search.n=abc"], "search.n='abc' is invalid; accepted: an integer"),
        (["search.n=0"], "search.n=0 is invalid"),
        (["verifier.reduction=lst"], "did you mean 'last'?"),
        (["model.dtype=fp8"], "model.dtype='fp8' is invalid"),
        (["search.n"], "accepted: section.key=value"),
        (["dataset.levels=[7]"], "levels in 1..5"),
        (["sampling.temperature=.inf"], "sampling.temperature=inf is invalid; accepted: a finite number"),
        (["sampling.temperature=-.inf"], "accepted: a finite number"),
        (["search.particle_temperature=.nan"], "search.particle_temperature=nan is invalid"),
        (["search.n=.inf"], "search.n=inf is invalid; accepted: an integer"),
    ],
)
def test_bad_values_name_key_and_accepted(override, fragment):
    with pytest.raises(ConfigError) as e:
        load_config(None, override)
    assert fragment in str(e.value)


def test_recipe_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  strategy: beam_search\n  beam_widht: 4\n")
    with pytest.raises(ConfigError, match="did you mean 'beam_width'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("search: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_every_bundled_recipe_loads():
    recipes = sorted(RECIPES_DIR.glob("*.yaml"))
    assert recipes
    for path in recipes:
        assert isinstance(load_config(path), RunConfig), path


def test_unknown_strategy_is_reported(fake_cfg):
    from ttscale.runner import run

    with pytest.raises(ConfigError, match="unknown strategy 'beam_serch' \\(did you mean 'beam_search'\\?\\)"):
        run(fake_cfg("search.strategy=beam_serch"), progress=False)


@pytest.mark.parametrize("typed, meant", [("\\n", "\n"), ("\\n\\n", "\n\n"), ('"\\n"', "\n"), ("'\n'", " ")])
def test_a_step_delimiter_typed_on_the_command_line_is_the_newline_meant(typed, meant):
    """A shell passes `--set search.step_delimiter=\\n` as backslash + n: decoded, not a literal backslash.
    (A real newline inside YAML single quotes folds to a space: YAML's rule, kept.)"""
    assert load_config(None, [f"search.step_delimiter={typed}"]).search.step_delimiter == meant


@pytest.mark.parametrize(("typed", "meant"), [
    ("\\n\\n", "\n\n"),
    ("\\t", "\t"),
    (" ки\\n", " ки\n"),  # non-ASCII survives (a unicode_escape decode would turn it into mojibake)
    ("\\boxed{\\frac{1}{2}}", "\\boxed{\\frac{1}{2}}"),  # LaTeX is not an escape
])
def test_a_shell_typed_escape_is_decoded_and_nothing_else(typed, meant):
    from ttscale.config import unescape

    assert unescape(typed) == meant
