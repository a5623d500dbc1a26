import json

import pytest

from ttscale.backends.fake import FakeGenerator
from ttscale.data.results import read_results
from ttscale.errors import ConfigError, RunDirError
from ttscale.runner import run
from ttscale.types import Generation


class CrashAfter(FakeGenerator):
    """Dies (like a killed process) after `limit` generator calls."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def generate(self, prompts, params):
        if self.calls >= self.limit:
            raise KeyboardInterrupt("killed")
        return super().generate(prompts, params)


def _lines(cfg):
    path = f"{cfg.output.dir}/completions.jsonl"
    return [json.loads(line)["id"] for line in open(path, encoding="utf-8")]


def test_killed_run_resumes_without_duplicates_or_gaps(fake_cfg):
    cfg = fake_cfg("dataset.limit=7")
    with pytest.raises(KeyboardInterrupt):
        run(cfg, generator=CrashAfter(2), progress=False)
    partial = _lines(cfg)
    assert len(partial) == 4  # two batches of two problems were written before the kill
    gen = FakeGenerator()
    outcome = run(cfg, generator=gen, progress=False)
    ids = _lines(cfg)
    assert len(ids) == len(set(ids)) == 7 and ids[:4] == partial
    assert outcome.n_new == 3 and outcome.n_skipped == 4
    assert gen.prompts_seen == 3  # only the unfinished problems were generated
    # The resumed run equals an uninterrupted one.
    fresh = fake_cfg("dataset.limit=7", f"output.dir={cfg.output.dir}-fresh")
    run(fresh, generator=FakeGenerator(), progress=False)
    a = {r.id: r.completions for r in read_results(cfg.output.dir)}
    b = {r.id: r.completions for r in read_results(fresh.output.dir)}
    assert a == b


def test_half_written_line_is_dropped_and_redone(fake_cfg):
    cfg = fake_cfg("dataset.limit=3")
    run(cfg, generator=FakeGenerator(), progress=False)
    path = f"{cfg.output.dir}/completions.jsonl"
    lines = open(path, encoding="utf-8").read().splitlines(keepends=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(lines[:2]) + lines[2][:40])
    outcome = run(cfg, generator=FakeGenerator(), progress=False)
    assert outcome.n_new == 1 and len(_lines(cfg)) == 3


def test_different_config_is_refused_unless_overwrite(fake_cfg):
    run(fake_cfg(), generator=FakeGenerator(), progress=False)
    with pytest.raises(RunDirError, match=r"different config \(search\.n: 4 there, 8 now\)"):
        run(fake_cfg("search.n=8"), generator=FakeGenerator(), progress=False)
    outcome = run(fake_cfg("search.n=8"), overwrite=True, generator=FakeGenerator(), progress=False)
    assert outcome.n_new == 6
    assert all(len(r.completions) == 8 for r in read_results(fake_cfg().output.dir))


def test_failing_problem_is_recorded_and_run_goes_on(fake_cfg):
    cfg = fake_cfg("dataset.limit=4")
    from ttscale.data.datasets import load_problems

    victim = load_problems(cfg.dataset)[1]
    outcome = run(cfg, generator=FakeGenerator(fail_on=victim.question), progress=False)
    results = {r.id: r for r in read_results(cfg.output.dir)}
    assert len(results) == 4 and "fake failure" in results[victim.id].error
    assert all(r.error is None and len(r.completions) == 4 for pid, r in results.items() if pid != victim.id)
    assert outcome.metrics["n_failed"] == 1
    # On resume only the failed problem is searched again, and its new row supersedes the old.
    gen = FakeGenerator()
    again = run(cfg, generator=gen, progress=False)
    assert again.n_new == 1 and gen.prompts_seen == 1 and again.metrics["n_failed"] == 0
    assert {r.id: r for r in read_results(cfg.output.dir)}[victim.id].error is None


def test_metrics_count_majority_from_known_answers(fake_cfg):
    """Every sample answers the gold for even samples and 999 for odd ones: maj@k is exactly computable."""

    class Scripted(FakeGenerator):
        def generate(self, prompts, params):
            return [[Generation(f"Step 1: so.\nAnswer: \\boxed{{{'999' if k % 2 else self.gold[p]}}}", 5, "eos", 3)
                     for k in range(q.n)] for p, q in zip(prompts, params)]

    from ttscale.data.datasets import load_problems
    from ttscale.data.prompts import build_prompt_format

    cfg = fake_cfg("dataset.limit=3", "search.n=3", "search.selection=majority")
    gen = Scripted()
    fmt = build_prompt_format(cfg.prompt, cfg.search.step_delimiter)
    gen.gold = {fmt.render(p): p.answer for p in load_problems(cfg.dataset)}
    metrics = run(cfg, generator=gen, progress=False).metrics
    assert metrics["accuracy"] == 1.0  # 2 of 3 samples are right
    assert metrics["curves"]["pass"]["1"] == pytest.approx(2 / 3)
    assert metrics["curves"]["majority"]["1"] == pytest.approx(2 / 3)  # exact at N=1, not a noisy subsample
    assert metrics["curves"]["pass"]["2"] == pytest.approx(1.0)


def test_needs_verifier_error(fake_cfg):
    with pytest.raises(ConfigError, match="needs a verifier"):
        run(fake_cfg("search.strategy=beam_search"), generator=FakeGenerator(), progress=False)
