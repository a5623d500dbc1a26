"""SearchSettings is written out field by field; these keep it in step with the recipe it is built from."""

import dataclasses

from ttscale.config import (
    AdaptiveConfig,
    DeepConfConfig,
    OutputConfig,
    ParticleConfig,
    RejectionConfig,
    RunConfig,
    SamplingConfig,
    SearchConfig,
    ThinkingConfig,
    VerifierConfig,
)
from ttscale.search import SearchSettings

# Recipe fields no strategy reads: the runner picks the strategy and batches problems.
RUN_LEVEL = {"strategy", "problems_per_batch"}
FROM_OTHER_SECTIONS = {"reduction": VerifierConfig, "save_trees": OutputConfig, "save_logprobs": OutputConfig}
# The recipe holds these as str and checks them against the closed set; the settings carry the Literal.
NARROWED = {"selection": "Selection", "reduction": "Reduction"}


def default(f: dataclasses.Field):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def test_every_search_and_sampling_field_is_a_setting_with_the_recipes_type_and_default():
    mine = {f.name: f for f in dataclasses.fields(SearchSettings)}
    for cls in (SearchConfig, SamplingConfig):
        for f in dataclasses.fields(cls):
            if f.name in RUN_LEVEL:
                continue
            assert f.name in mine, f"{cls.__name__}.{f.name} is not a SearchSettings field"
            assert mine[f.name].type == NARROWED.get(f.name, f.type), f.name
            assert default(mine[f.name]) == default(f), f.name
    for name, cls in FROM_OTHER_SECTIONS.items():
        theirs = next(f for f in dataclasses.fields(cls) if f.name == name)
        assert (mine[name].type, default(mine[name])) == (NARROWED.get(name, theirs.type), default(theirs)), name
    recipe = {f.name for cls in (SearchConfig, SamplingConfig) for f in dataclasses.fields(cls)}
    assert set(mine) - recipe - set(FROM_OTHER_SECTIONS) == {"end_markers"}


def test_from_config_copies_every_field_from_the_recipe():
    cfg = RunConfig(
        search=SearchConfig(n=3, beam_width=5, lookahead=2, step_markers=["Hmm"], adaptive=AdaptiveConfig(wave=7),
                            deepconf=DeepConfConfig(eta=10.0, mode="offline"), policy="p.json",
                            rejection=RejectionConfig(rate=0.25), particle=ParticleConfig(temperature=0.3),
                            max_flops_per_problem=1e9),
        sampling=SamplingConfig(temperature=0.3, seed=11, logprobs=5, thinking=ThinkingConfig(max_tokens=9)),
        verifier=VerifierConfig(reduction="min"), output=OutputConfig(save_trees=True, save_logprobs=True))
    s = SearchSettings.from_config(cfg, end_markers=("\nQ:",))
    for section in (cfg.search, cfg.sampling):
        for f in dataclasses.fields(section):
            if f.name not in RUN_LEVEL:
                assert getattr(s, f.name) == getattr(section, f.name), f.name
    assert (s.reduction, s.save_trees, s.save_logprobs, s.end_markers) == ("min", True, True, ("\nQ:",))
    resolved = ThinkingConfig(start="<t>", end="</t>")
    assert SearchSettings.from_config(cfg, (), resolved).thinking == resolved


def test_updated_merges_a_policy_entrys_section_keys_and_reads_the_flat_spelling():
    base = SearchSettings(particle=ParticleConfig(temperature=0.3, resample_ess=0.5))
    s = base.updated({"n": 4, "particle": {"temperature": 0.7}})
    assert (s.n, s.particle) == (4, ParticleConfig(temperature=0.7, resample_ess=0.5))
    # a policy.json written before the sections existed names the knob flat
    old = base.updated({"particle_temperature": 0.9, "wave": 2})
    assert (old.particle.temperature, old.particle.resample_ess, old.adaptive.wave) == (0.9, 0.5, 2)
