"""Every registered strategy's fake-backend run against rows committed in tests/golden/runs.json.

A refactor of the search (the expansion core, the settings, a strategy's own rules) must not
change what a run writes: the fake backend and the fake verifier are deterministic on every
machine, so the same recipe gives the same completions.jsonl, byte for byte in what matters
(texts, token counts, scores, picks, budgets; not wall time). A deliberate change of behaviour
rewrites the golden rows with `TTSCALE_UPDATE_GOLDEN=1 pytest tests/test_golden_runs.py` and
commits them with the change that explains why.
"""

import json
import os
from pathlib import Path

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.data.policy import Policy, PolicyEntry
from ttscale.data.results import read_results
from ttscale.runner import run
from ttscale.search.base import STRATEGIES
from ttscale.verifiers.fake import FakeVerifier

GOLDEN = Path(__file__).parent / "golden" / "runs.json"
UPDATE = os.environ.get("TTSCALE_UPDATE_GOLDEN") == "1"


def rows(run_dir: Path) -> list[dict]:
    out = []
    for r in read_results(run_dir):
        budget = r.budget.to_dict()
        budget.pop("wall_time_s")
        out.append({"id": r.id, "selected": r.selected, "error": r.error, "budget": budget,
                    "completions": [c.to_dict() for c in r.completions]})
    return out


def strategy_run(name: str, fake_cfg, tmp_path: Path) -> list[dict]:
    extra = []
    if name == "compute_optimal":
        # easy problems to best-of-N, hard ones to beam search: both paths are in the rows
        policy = tmp_path / "policy.json"
        Policy(edges=(0.5,), reduction="last", probe_n=2, budgets={1: {
            0: PolicyEntry("beam", "beam_search", {}), 1: PolicyEntry("bon", "best_of_n", {})}}).save(policy)
        extra.append(f"search.policy={policy}")
    cfg = fake_cfg(f"search.strategy={name}", "verifier.name=fake", "search.n=8", "search.beam_width=2",
                   "dataset.limit=4", "sampling.logprobs=2", "output.save_trees=true",
                   f"output.dir={tmp_path / name}", *extra)
    run(cfg, generator=FakeGenerator(), verifier=FakeVerifier(), progress=False)
    return rows(tmp_path / name)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_a_fake_run_writes_the_committed_rows(name, fake_cfg, tmp_path):
    got = json.loads(json.dumps(strategy_run(name, fake_cfg, tmp_path)))  # JSON's own floats and lists
    golden = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.is_file() else {}
    if UPDATE:
        golden[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    assert name in golden, (f"no golden rows for strategy {name!r}: run TTSCALE_UPDATE_GOLDEN=1 pytest "
                            "tests/test_golden_runs.py and commit tests/golden/runs.json")
    want = golden[name]
    assert [r["id"] for r in got] == [r["id"] for r in want]
    for g, w in zip(got, want):
        assert g == w, f"{name}: problem {g['id']} differs from the golden rows"
