"""The published algorithms' own rules (search-and-learn; its_hub for particle filtering), policy by policy."""

import math

import pytest

from ttscale.search.beam import BeamPolicy
from ttscale.search.dvts import DVTSPolicy
from ttscale.search.particle import ParticlePolicy, effective_sample_size, particle_weights
from ttscale.search.records import Beam


def beam(value, finished=False, text="x"):
    return Beam(steps=(text,), value=value, finished=finished)


def test_particle_weights_go_through_the_logit():
    w = particle_weights([0.99, 0.5], temperature=1.0)
    assert w[0] / w[1] == pytest.approx(99.0, rel=1e-6)  # softmax over raw p would give e^0.49 = 1.6
    cooler = particle_weights([0.99, 0.5], temperature=0.5)
    assert cooler[0] / cooler[1] == pytest.approx(99.0**2, rel=1e-6)
    edge = particle_weights([0.0, 1.0], temperature=1.0)  # clipped, never a log(0)
    assert all(math.isfinite(x) for x in edge) and edge[1] > 0.999


def test_effective_sample_size():
    assert effective_sample_size([0.25] * 4) == pytest.approx(4.0)
    assert effective_sample_size([1.0, 0.0, 0.0]) == pytest.approx(1.0)


def test_finished_particles_stay_in_the_population_and_are_not_extended():
    # Equal values keep the ESS at N > N/2: no resampling, so the population is exactly what was carried.
    pol = ParticlePolicy(n=4, temperature=1.0, resample_ess=0.5, seed=0)
    pol.initial()
    done, opens = beam(0.5, finished=True, text="done"), [beam(0.5, text=f"o{i}") for i in range(3)]
    expansions = pol.step([done, *opens])
    assert [(e.parent, e.k) for e in expansions] == [(b, 1) for b in opens]  # the finished one is kept, not grown
    children = [beam(0.5, text=f"c{i}") for i in range(3)]
    expansions = pol.step(children)
    assert pol.population == [done, *children]  # next round: the finished particle is still one of the N
    assert [e.parent for e in expansions] == children


def test_finished_particles_are_resampled_with_the_rest():
    pol = ParticlePolicy(n=4, temperature=1.0, resample_ess=1.0, seed=0)
    pol.initial()
    sure = beam(0.999, finished=True, text="sure")
    pol.step([sure] + [beam(0.001, text=f"o{i}") for i in range(3)])
    assert sum(b is sure for b in pol.population) >= 3  # 0.999 vs 0.001 is ~10^6:1 through the logit
    pol = ParticlePolicy(n=4, temperature=1.0, resample_ess=1.0, seed=0)
    pol.initial()
    done = beam(0.9, finished=True, text="done")
    expansions = pol.step([done] + [beam(0.5, text=f"o{i}") for i in range(3)])
    kept = sum(b is done for b in pol.population)
    # this seed draws both kinds, so the next round has children to join the kept finished ones
    assert kept and expansions and all(not e.parent.finished for e in expansions)
    assert sum(e.k for e in expansions) == 4 - kept
    pol.step([beam(0.5, text=f"c{i}") for i in range(4 - kept)])
    assert len(pol.population) == 4 and any(b is done for b in pol.population)


def test_resampling_only_when_the_effective_sample_size_drops():
    even = [beam(0.5, text=str(i)) for i in range(4)]
    never = ParticlePolicy(n=4, temperature=1.0, resample_ess=0.5, seed=0)
    never.step(even)
    assert never.population == even  # ESS = N > N/2: every particle goes on as it is, one child each
    skewed = [beam(0.999, text="a")] + [beam(0.01, text=str(i)) for i in range(3)]
    resampled = ParticlePolicy(n=4, temperature=1.0, resample_ess=0.5, seed=0)
    expansions = resampled.step(skewed)
    assert [b.steps for b in resampled.population] == [("a",)] * 4
    assert [(e.parent.steps, e.k) for e in expansions] == [(("a",), 4)]  # drawn 4 times: 4 children, one request


def test_beam_search_tops_the_active_set_back_up_to_n():
    pol = BeamPolicy(n=8, beam_width=4, max_iterations=10)
    (root,) = pol.initial()
    assert root.k == 8 and not root.whole
    expansions = pol.step([beam(0.9, text="a")] + [beam(0.1, finished=True, text=str(i)) for i in range(7)])
    assert [(e.parent.steps, e.k) for e in expansions] == [(("a",), 8)]  # one beam left: it gets all N
    expansions = pol.step([beam(0.1 * i, text=str(i)) for i in range(8)])
    assert [e.k for e in expansions] == [4, 4] and [e.parent.value for e in expansions] == pytest.approx([0.7, 0.6])


def test_dvts_returns_every_candidate_of_each_subtree_not_its_best_m_times():
    pol = DVTSPolicy(n=4, beam_width=2, max_iterations=10)
    assert [(e.group, e.k) for e in pol.initial()] == [(0, 2), (1, 2)]  # N/M = 2 subtrees of M = 2
    first = [Beam(steps=(f"{g}{i}",), value=0.1 * (i + 1), group=g) for g in (0, 1) for i in range(2)]
    expansions = pol.step(first)
    assert [(e.parent.steps, e.k) for e in expansions] == [(("01",), 2), (("11",), 2)]  # each tree grows its best
    last = [Beam(steps=(f"{g}{i}", "end"), value=0.5 + 0.1 * i, group=g, finished=True) for g in (0, 1)
            for i in range(2)]
    assert pol.step(last) == []
    # search-and-learn's DVTS votes over all N: each subtree's M distinct candidates, best first
    assert [b.steps[0] for b in pol.finish()] == ["01", "00", "11", "10"]
