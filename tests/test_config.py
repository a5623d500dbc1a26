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
        (["search.particle.temperature=.nan"], "search.particle.temperature=nan is invalid"),
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


def test_a_strategy_knob_spelled_flat_is_read_into_its_section_with_a_note(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text("search:\n  strategy: particle_filtering\n  particle_temperature: 0.2\n  wave: 3\n")
    with caplog.at_level("WARNING", logger="ttscale.recipe"):
        cfg = load_config(old, ["search.rejection_rate=0.25"])
    assert (cfg.search.particle.temperature, cfg.search.adaptive.wave, cfg.search.rejection.rate) == (0.2, 3, 0.25)
    notes = [r.getMessage() for r in caplog.records]
    assert "search.particle_temperature is now search.particle.temperature; read as that" in notes
    assert len(notes) == 3
    # the nested spelling is the one written back, and reads with no note
    caplog.clear()
    with caplog.at_level("WARNING", logger="ttscale.recipe"):
        assert load_config(None, ["search.particle.temperature=0.2"]).search.particle == cfg.search.particle
    assert not caplog.records


def test_a_knob_set_both_ways_to_different_values_is_refused():
    with pytest.raises(ConfigError, match="search.wave=3 and search.adaptive.wave=5 name the same setting"):
        load_config(None, ["search.wave=3", "search.adaptive.wave=5"])
    assert load_config(None, ["search.wave=5", "search.adaptive.wave=5"]).search.adaptive.wave == 5


def test_a_run_saved_with_flat_keys_resumes_under_the_sections():
    from ttscale.data.results import config_difference

    here = load_config(None, ["search.particle.temperature=0.2"]).to_dict()
    there = {**here, "search": {k: v for k, v in here["search"].items() if k != "particle"}}
    there["search"]["particle_temperature"] = 0.2
    assert config_difference(there, here) is None
    there["search"]["particle_temperature"] = 0.3
    assert config_difference(there, here) is not None
