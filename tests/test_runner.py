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


class Closable(FakeGenerator):
    closed = 0

    def close(self):
        self.closed += 1


def test_a_generator_the_run_builds_is_closed_and_one_it_is_given_is_not(fake_cfg, monkeypatch):
    """An HTTP backend holds a connection pool and threads: the run that built it releases them."""
    built = Closable()
    monkeypatch.setattr("ttscale.runner.build_generator", lambda cfg: built)
    run(fake_cfg("dataset.limit=2"), progress=False)
    assert built.closed == 1
    given = Closable()
    run(fake_cfg("dataset.limit=2", "output.dir=" + fake_cfg().output.dir + "-given"), generator=given, progress=False)
    assert given.closed == 0 and given.calls > 0


def test_a_beam_width_that_does_not_divide_n_is_refused_before_any_problem_is_read(fake_cfg):
    cfg = fake_cfg("search.strategy=beam_search", "verifier.name=fake", "search.n=6", "search.beam_width=4",
                   "dataset.source=/nowhere.jsonl")
    with pytest.raises(ConfigError, match="search.beam_width=4 does not divide search.n=6"):
        run(cfg, generator=FakeGenerator(), progress=False)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


QUESTIONS = [{"problem": f"What is {a} + {a}?", "answer": str(2 * a)} for a in range(1, 5)]


def test_inserted_line_does_not_shift_ids_or_reuse_stale_rows(fake_cfg, tmp_path):
    """Ids come from content, not file:lineno, so a line inserted on top does not pair old results with new problems."""
    data = tmp_path / "d.jsonl"
    _jsonl(data, QUESTIONS[1:])
    cfg = fake_cfg(f"dataset.source={data}", "dataset.limit=null")
    assert run(cfg, generator=FakeGenerator(), progress=False).n_new == 3
    _jsonl(data, QUESTIONS)
    gen = FakeGenerator()
    outcome = run(cfg, generator=gen, progress=False)
    assert (outcome.n_new, outcome.n_skipped, outcome.n_changed, gen.prompts_seen) == (1, 3, 0, 1)
    rows = {r.problem.question: r.problem.answer for r in read_results(cfg.output.dir)}
    assert rows == {q["problem"]: q["answer"] for q in QUESTIONS}


def test_changed_gold_answer_under_the_same_id_is_searched_again(fake_cfg, tmp_path):
    data = tmp_path / "d.jsonl"
    rows = [{**q, "id": f"p{i}"} for i, q in enumerate(QUESTIONS)]
    _jsonl(data, rows)
    cfg = fake_cfg(f"dataset.source={data}", "dataset.limit=null")
    run(cfg, generator=FakeGenerator(), progress=False)
    rows[2] = {**rows[2], "answer": "7"}
    _jsonl(data, rows)
    outcome = run(cfg, generator=FakeGenerator(), progress=False)
    assert (outcome.n_new, outcome.n_skipped, outcome.n_changed) == (1, 3, 1)
    assert {r.id: r.problem.answer for r in read_results(cfg.output.dir)}["p2"] == "7"
    assert outcome.metrics["n_problems"] == 4


def test_changed_question_under_the_same_id_is_searched_again(fake_cfg, tmp_path):
    data = tmp_path / "d.jsonl"
    rows = [{**q, "id": f"p{i}"} for i, q in enumerate(QUESTIONS)]
    _jsonl(data, rows)
    cfg = fake_cfg(f"dataset.source={data}", "dataset.limit=null")
    run(cfg, generator=FakeGenerator(), progress=False)
    rows[2] = {**rows[2], "problem": "What is 2 * 3?"}  # the same gold answer, another question
    _jsonl(data, rows)
    gen = FakeGenerator()
    outcome = run(cfg, generator=gen, progress=False)
    assert (outcome.n_new, outcome.n_skipped, outcome.n_changed, gen.prompts_seen) == (1, 3, 1, 1)
    assert {r.id: r.problem.question for r in read_results(cfg.output.dir)}["p2"] == "What is 2 * 3?"


def test_identical_rows_without_ids_get_distinct_content_ids(tmp_path):
    from ttscale.config import DatasetConfig
    from ttscale.data.datasets import load_problems

    data = tmp_path / "d.jsonl"
    _jsonl(data, [QUESTIONS[0], QUESTIONS[1], QUESTIONS[0]])
    ids = [p.id for p in load_problems(DatasetConfig(source=str(data)))]
    assert ids[2] == ids[0] + "#2" and len(set(ids)) == 3 and ids[0].startswith("d:")


@pytest.mark.parametrize("overwrite", [False, True])
def test_folder_that_is_not_a_run_is_refused(fake_cfg, tmp_path, overwrite):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.json").write_text("mine")
    with pytest.raises(RunDirError, match=r"is not empty and is not a ttscale run \(no config.yaml; holds metrics.json\)"):
        run(fake_cfg(), overwrite=overwrite, generator=FakeGenerator(), progress=False)
    assert (folder / "metrics.json").read_text() == "mine" and sorted(p.name for p in folder.iterdir()) == ["metrics.json"]


def test_second_process_on_a_locked_folder_is_refused(fake_cfg):
    import os

    from ttscale.data.results import RunDir

    cfg = fake_cfg()
    holder = RunDir(cfg.output.dir)
    holder.prepare(cfg.to_dict())
    try:
        with pytest.raises(RunDirError, match=rf"in use by another ttscale process \(pid {os.getpid()}\)"):
            run(cfg, generator=FakeGenerator(), progress=False)
    finally:
        holder.release()
    assert run(cfg, generator=FakeGenerator(), progress=False).n_new == 6  # the lock is gone with its holder


def _signal_then_wait(started, go) -> None:
    started.set()
    go.wait(30)


def test_a_child_forked_during_a_run_does_not_keep_its_folder_locked(fake_cfg):
    """A grading worker forked mid-run inherited the lock's file: the next run on the folder was refused."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    from ttscale.data.results import RunDir

    cfg = fake_cfg()
    ctx = mp.get_context("fork")
    holder = RunDir(cfg.output.dir)
    holder.prepare(cfg.to_dict())
    started, go = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_signal_then_wait, args=(started, go), daemon=True)
    child.start()
    # The child's at-fork hooks run before its target: once it signals, it holds what a worker holds
    # mid-run. Without the wait a loaded machine could still be forking when the next run locks.
    assert started.wait(30)
    try:
        holder.release()
        assert run(cfg, generator=FakeGenerator(), progress=False).n_new == 6
    finally:
        go.set()
        child.join(30)


def test_two_runs_at_once_search_each_problem_once(fake_cfg):
    """A second run on a folder in use is refused, so each problem is searched once, not once per run."""
    import threading

    started, go = threading.Event(), threading.Event()

    class Paused(FakeGenerator):
        def generate(self, prompts, params):
            started.set()
            go.wait(30)
            return super().generate(prompts, params)

    cfg = fake_cfg("dataset.limit=6")
    first = threading.Thread(target=run, args=(cfg,), kwargs={"generator": Paused(), "progress": False})
    first.start()
    try:
        assert started.wait(30)  # the first run is mid-search, holding the folder
        with pytest.raises(RunDirError, match="in use by another ttscale process"):
            run(cfg, generator=FakeGenerator(), progress=False)
    finally:
        go.set()
        first.join(30)
    ids = _lines(cfg)
    assert len(ids) == len(set(ids)) == 6


def test_raising_the_limit_resumes_and_runs_only_the_new_problems(fake_cfg):
    run(fake_cfg("dataset.limit=5"), generator=FakeGenerator(), progress=False)
    gen = FakeGenerator()
    more = run(fake_cfg("dataset.limit=10"), generator=gen, progress=False)
    assert (more.n_new, more.n_skipped, gen.prompts_seen) == (5, 5, 5)
    fewer = run(fake_cfg("dataset.limit=3"), generator=FakeGenerator(), progress=False)
    assert (fewer.n_new, fewer.metrics["n_problems"]) == (0, 3)
