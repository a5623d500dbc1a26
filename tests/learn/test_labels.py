"""label-steps: Monte Carlo labels from scripted rollouts, one generate call per problem, resume, TRL's format."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ttscale.backends.fake import FakeGenerator
from ttscale.errors import ConfigError, RunDirError
from ttscale.learn.labels import DATASET, STEPS_JSONL, TALLIES, label_steps
from ttscale.types import ProblemResult
from ttscale.verifiers.prm_format import IGNORE, PRMLayout, encode_steps, tokenize_row

from .conftest import PROBLEMS, RIGHT_0, WRONG_0, completion


def gold_unless_wrong(prompt, rng):
    """A policy that reaches the gold answer from any prefix without a WRONG step in it."""
    problem = next(p for p in PROBLEMS if p.question in prompt)
    tail = prompt.split(problem.question)[-1]
    answer = "0" if "WRONG" in tail else problem.answer
    return f"Step 9: so it is {answer}.\nAnswer: \\boxed{{{answer}}}\nQuestion: next"


def coin(prompt, rng):
    problem = next(p for p in PROBLEMS if p.question in prompt)
    return f"Answer: \\boxed{{{problem.answer if rng.random() < 0.5 else 'no'}}}\nQuestion: next"


class Recording(FakeGenerator):
    def __init__(self, script, **kw):
        super().__init__(script=script, **kw)
        self.requests = []

    def generate(self, prompts, params):
        assert len({(q.n, q.stop, q.max_new_tokens) for q in params}) <= 1  # one rollout setting per call
        self.requests.append((list(prompts), params[0]))
        return super().generate(prompts, params)


def rows_of(out):
    return [json.loads(line) for line in (out.output / STEPS_JSONL).read_text().splitlines()]


def test_hard_labels_follow_the_rollouts_and_the_candidates_own_answer(make_run, tmp_path):
    gen = Recording(gold_unless_wrong)
    out = label_steps(make_run(), tmp_path / "labels", rollouts=3, generator=gen, progress=False)
    rows = rows_of(out)
    assert [(r["id"], r["labels"]) for r in rows] == [
        ("p0", [True, True]),          # right: rollouts from step 1 reach 9; the last step is its own answer
        ("p0", [False, False]),        # wrong from step 1 on
        ("p1", [True, True]),
        ("p1", [False, False, False]),
        ("p1", [True]),                # unfinished: its only step is rolled out, not graded as an answer
    ]
    assert rows[0]["prompt"] == PROBLEMS[0].question
    assert rows[0]["completions"] == [RIGHT_0.split("\n")[0], "Answer: \\boxed{9}"]  # delimiter stripped
    assert rows[1]["completions"][0] == WRONG_0.split("\n")[0]
    assert rows[0]["mc_values"] == [1.0, 1.0] and rows[1]["mc_values"] == [0.0, 0.0]
    # one generate call per problem, n = k, stopping at the prompt format's end markers
    assert len(gen.requests) == 2
    assert [len(p) for p, _ in gen.requests] == [2, 4]  # distinct non-final prefixes (+ the unfinished one)
    # the run's step delimiter "\n" holds no blank line, so a blank line ends a rollout as it ends a sample
    assert all(params.n == 3 and params.stop == ("\nQuestion:", "\n\n") for _, params in gen.requests)
    assert all(params.max_new_tokens == 64 for _, params in gen.requests)  # the run's sampling.max_new_tokens
    assert all(p.endswith((".\n", "not sure")) for p in gen.requests[1][0])
    assert (out.n_rows, out.n_new, out.n_skipped, out.n_failed) == (5, 2, 0, 0)


def never(prompt, rng):
    return "Answer: \\boxed{no}\nQuestion: next"


def test_a_candidate_counts_as_one_more_rollout_of_the_prefixes_it_continues(make_run, tmp_path):
    shared = "Step 1: Tom buys 4 more apples, so 5 + 4 = 9.\n"
    rows = [ProblemResult(problem=PROBLEMS[0], strategy="best_of_n", selected=0, completions=(
        completion(shared + "Step 2: so 9.\nAnswer: \\boxed{9}", "9"),
        completion(shared + "Step 2: so 10.\nAnswer: \\boxed{10}", "10"),
    ))]
    out = label_steps(make_run(rows), tmp_path / "own", rollouts=3, mode="soft", generator=FakeGenerator(script=never),
                      progress=False)
    right, wrong = rows_of(out)
    # every fresh rollout fails: step 1 is continued by both candidates (1 right of 3 + 2), step 2 by its own only
    assert right["mc_values"] == [pytest.approx(1 / 5), pytest.approx(1 / 4), 1.0]
    assert wrong["mc_values"] == [pytest.approx(1 / 5), 0.0, 0.0]
    # the tallies behind each value: fresh rollouts, then the candidates continuing the prefix (a finished
    # candidate's last step is its own answer alone)
    assert [right[k] for k in TALLIES] == [[0, 0, 0], [3, 3, 0], [1, 1, 1], [2, 1, 1]]
    assert [wrong[k] for k in TALLIES] == [[0, 0, 0], [3, 3, 0], [1, 0, 0], [2, 1, 1]]
    assert all((h + oh) / (k + ot) == pytest.approx(v) for r in (right, wrong)
               for h, k, oh, ot, v in zip(*(r[t] for t in TALLIES), r["mc_values"]))
    off = label_steps(make_run(rows, "r2"), tmp_path / "off", rollouts=3, generator=FakeGenerator(script=never),
                      progress=False, own_continuation=False)
    assert [r["labels"] for r in rows_of(off)] == [[False, False, True], [False, False, False]]


def test_a_thinking_runs_rollouts_count_only_the_answer_after_thinking(make_run, tmp_path):
    def thinker(prompt, rng):
        # says the gold answer while thinking, then closes it (or not) with another one
        gold = next(p for p in PROBLEMS if p.question in prompt).answer
        close = "</think> Answer: \\boxed{1}" if "close" in prompt else ""
        return f"so it is \\boxed{{{gold}}}. {close}\nQuestion: next"

    rows = [ProblemResult(problem=PROBLEMS[0], strategy="best_of_n", selected=0, completions=(
        completion("<think>Step 1: 5 + 4 = 9, close.\nStep 2: hmm\n", None, finished=False),
        completion("<think>Step 1: 5 + 4 = 9.\nStep 2: hmm\n", None, finished=False),
    ))]
    thinking = ["sampling.thinking.start=<think>", "sampling.thinking.end=</think>"]
    out = label_steps(make_run(rows, "think", *thinking), tmp_path / "t", rollouts=2, mode="soft",
                      generator=FakeGenerator(script=thinker), progress=False, own_continuation=False)
    assert [r["mc_values"] for r in rows_of(out)] == [[0.0, 0.0], [0.0, 0.0]]
    plain = label_steps(make_run(rows, "plain"), tmp_path / "p", rollouts=2, mode="soft",
                        generator=FakeGenerator(script=thinker), progress=False, own_continuation=False)
    assert [r["mc_values"] for r in rows_of(plain)] == [[0.0, 0.0], [1.0, 1.0]]  # no markers: the first boxed counts


def test_labels_written_before_own_continuation_resume_only_without_it(make_run, tmp_path):
    run, dest = make_run(), tmp_path / "old"
    first = label_steps(run, dest, rollouts=2, generator=FakeGenerator(script=never), progress=False,
                        own_continuation=False)
    settings = json.loads((dest / "label_settings.json").read_text())
    del settings["own_continuation"]
    (dest / "label_settings.json").write_text(json.dumps(settings))
    with pytest.raises(RunDirError, match="own_continuation=False, not True"):
        label_steps(run, dest, rollouts=2, generator=FakeGenerator(script=never), progress=False)
    # rows from before the tallies were kept: the dataset is rewritten without those columns
    rows = [json.loads(line) for line in (dest / STEPS_JSONL).read_text().splitlines()]
    (dest / STEPS_JSONL).write_text("".join(json.dumps({k: v for k, v in r.items() if k not in TALLIES}) + "\n"
                                            for r in rows))
    again = label_steps(run, dest, rollouts=2, generator=FakeGenerator(script=never), progress=False,
                        own_continuation=False)
    assert (again.n_rows, again.n_skipped) == (first.n_rows, 2)
    from datasets import load_from_disk

    assert not set(TALLIES) & set(load_from_disk(str(dest / DATASET)).column_names)


def test_soft_labels_are_the_fraction_of_rollouts_that_reach_gold(make_run, tmp_path):
    out = label_steps(make_run(), tmp_path / "soft", rollouts=4, mode="soft", generator=FakeGenerator(script=coin),
                      progress=False, own_continuation=False)
    rows = rows_of(out)
    fractions = {v for r in rows for v in r["labels"]}
    assert fractions <= {0.0, 0.25, 0.5, 0.75, 1.0} and len(fractions) > 2
    assert all(r["labels"] == r["mc_values"] for r in rows)
    hard = label_steps(make_run(name="r2"), tmp_path / "hard", rollouts=4, generator=FakeGenerator(script=coin),
                       progress=False, own_continuation=False)
    assert [r["labels"] for r in rows_of(hard)] == [[v > 0 for v in r["mc_values"]] for r in rows]


def test_max_per_problem_keeps_right_and_wrong_candidates(make_run, tmp_path):
    gen = Recording(gold_unless_wrong)
    out = label_steps(make_run(), tmp_path / "l", rollouts=1, max_per_problem=2, max_new_tokens=7, generator=gen,
                      progress=False)
    assert all(params.max_new_tokens == 7 for _, params in gen.requests)
    assert [(r["id"], r["labels"][-1]) for r in rows_of(out)] == [("p0", True), ("p0", False), ("p1", True), ("p1", False)]


def test_resume_skips_done_problems_and_retries_failed_ones(make_run, tmp_path, caplog):
    run, dest = make_run(), tmp_path / "labels"
    failing = Recording(gold_unless_wrong, fail_on="Anna")
    first = label_steps(run, dest, rollouts=2, generator=failing, progress=False)
    assert (first.n_new, first.n_failed, first.n_rows) == (1, 1, 2)
    assert "problem p1 failed" in caplog.text
    again = Recording(gold_unless_wrong)
    second = label_steps(run, dest, rollouts=2, generator=again, progress=False)
    assert (second.n_new, second.n_skipped, second.n_rows) == (1, 1, 5)
    assert len(again.requests) == 1 and all("Anna" in p for p in again.requests[0][0])
    third = label_steps(run, dest, rollouts=2, generator=again, progress=False)
    assert (third.n_new, third.n_skipped, len(again.requests)) == (0, 2, 1)
    with pytest.raises(RunDirError, match="rollouts=2"):
        label_steps(run, dest, rollouts=5, generator=again, progress=False)


def test_rollouts_sample_at_the_runs_temperature_unless_one_is_given(make_run, tmp_path):
    run = make_run(None, "run", "sampling.temperature=0.8")
    default, cool = Recording(gold_unless_wrong), Recording(gold_unless_wrong)
    label_steps(run, tmp_path / "a", rollouts=2, generator=default, progress=False)
    label_steps(run, tmp_path / "b", rollouts=2, generator=cool, progress=False, temperature=0.3)
    assert {params.temperature for _, params in default.requests} == {0.8}
    assert {params.temperature for _, params in cool.requests} == {0.3}
    # a folder labelled at one temperature does not resume at another, and one written before the
    # setting existed (the run's temperature) resumes only without it
    with pytest.raises(RunDirError, match="temperature=0.3, not 0.5"):
        label_steps(run, tmp_path / "b", rollouts=2, generator=cool, progress=False, temperature=0.5)
    settings = json.loads((tmp_path / "a" / "label_settings.json").read_text())
    del settings["temperature"]
    (tmp_path / "a" / "label_settings.json").write_text(json.dumps(settings))
    assert label_steps(run, tmp_path / "a", rollouts=2, generator=default, progress=False).n_skipped == 2
    with pytest.raises(RunDirError, match="temperature=None, not 0.3"):
        label_steps(run, tmp_path / "a", rollouts=2, generator=default, progress=False, temperature=0.3)


def test_bad_settings_fail_before_any_generation(make_run, tmp_path):
    with pytest.raises(ConfigError, match="--rollouts=0"):
        label_steps(make_run(), tmp_path / "x", rollouts=0)
    with pytest.raises(ConfigError, match="--mode='medium'"):
        label_steps(make_run(name="r2"), tmp_path / "y", mode="medium")  # type: ignore[arg-type]
    for bad, match in ((-0.1, "--temperature=-0.1"), (float("nan"), "--temperature=nan"),
                       (0.0, "--temperature=0 rolls out one greedy completion; --rollouts=8")):
        with pytest.raises(ConfigError, match=match):
            label_steps(make_run(name="r3"), tmp_path / "z", temperature=bad)
    assert not (tmp_path / "z").exists()


def test_dataset_has_trls_stepwise_columns_and_tokenizes_like_prm_trainer(make_run, tmp_path, smol_tokenizer):
    from datasets import Features, Sequence, Value, load_from_disk

    out = label_steps(make_run(), tmp_path / "labels", rollouts=2, generator=FakeGenerator(script=gold_unless_wrong),
                      progress=False)
    ds = load_from_disk(str(out.output / DATASET))
    assert ds.features["prompt"] == Value("string")
    assert ds.features["completions"] == Sequence(Value("string"))
    assert ds.features["labels"] == Sequence(Value("bool"))
    assert all(ds.features[k] == Sequence(Value("int32")) for k in TALLIES)
    assert ds[0]["rollouts"] == [2, 0]  # step 1 rolled out twice; the last step is the candidate's answer
    layout = PRMLayout(step_separator="\n")
    # as PRMTrainer maps it: explicit features, or datasets casts the new labels back to bool
    tokenized = ds.map(
        lambda r: tokenize_row(r, smol_tokenizer, layout, None), remove_columns=ds.column_names,
        features=Features({"input_ids": Sequence(Value("int64")), "labels": Sequence(Value("float32"))}),
    )
    sep = smol_tokenizer.encode("\n", add_special_tokens=False)[-1]
    for row, tok in zip(ds, tokenized):
        labelled = [i for i, v in enumerate(tok["labels"]) if v != IGNORE]
        assert [tok["labels"][i] for i in labelled] == [float(v) for v in row["labels"]]
        assert all(tok["input_ids"][i] == sep for i in labelled)
        assert tok["input_ids"][0] == smol_tokenizer.bos_token_id
        assert encode_steps(smol_tokenizer, row["prompt"], row["completions"], layout) == (tok["input_ids"], labelled)


def test_layout_equals_trls_own_tokenize_row_when_installed(smol_tokenizer):
    from ttscale.learn.train import trl_prm_trainer

    found = trl_prm_trainer()
    if found is None:
        pytest.skip("the installed TRL has no PRMTrainer (dropped in trl 1.x); the layout is a copy of trl 0.29's")
    row = {"prompt": PROBLEMS[0].question, "completions": ["Step 1: 5 + 4 = 9.", "Answer: \\boxed{9}"],
           "labels": [True, False]}
    theirs = found[0].tokenize_row(row, smol_tokenizer, "\n", max_length=None, max_completion_length=None,
                                   train_on_last_step_only=False, is_eval=False)
    ours = tokenize_row(row, smol_tokenizer, PRMLayout(step_separator="\n"), None)
    assert ours["input_ids"] == theirs["input_ids"]
    assert ours["labels"] == [float(v) for v in theirs["labels"]]


def test_cli_label_steps_on_a_fake_backend_run(make_run, tmp_path):
    from ttscale.cli import app

    res = CliRunner().invoke(app, ["learn", "label-steps", str(make_run()), "--output", str(tmp_path / "l"),
                                   "--rollouts", "2", "--mode", "soft", "--temperature", "0.5", "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "l" / "label_settings.json").read_text())["temperature"] == 0.5
    assert "5 labelled solutions" in res.output and "2 new problems" in res.output
    bad = CliRunner().invoke(app, ["learn", "label-steps", str(tmp_path / "l"), "--output", str(tmp_path / "m")])
    assert bad.exit_code == 2 and "not a ttscale run directory" in bad.output
