"""export-sft: which solutions, dedup, caps, the files, and TRL's conversational format."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ttscale.cli import app
from ttscale.config import REFERENCE_SYSTEM_PROMPT
from ttscale.errors import ConfigError
from ttscale.learn.sft import SFT_DATASET, SFT_JSONL, export_sft
from ttscale.types import ProblemResult

from .conftest import PROBLEMS, RIGHT_0, RIGHT_1, WRONG_1, results


def assistant(row):
    return row["messages"][-1]["content"]


def test_selected_exports_each_problems_pick_as_a_chat(make_run, tmp_path):
    out = export_sft(make_run(), tmp_path / "sft")
    rows = [json.loads(line) for line in (out.output / SFT_JSONL).read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p0", "p1"]
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert rows[0]["messages"][0]["content"] == REFERENCE_SYSTEM_PROMPT
    assert rows[0]["messages"][1]["content"] == PROBLEMS[0].question
    assert [assistant(r) for r in rows] == [RIGHT_0, WRONG_1]  # selected, right or wrong
    assert (out.n_rows, out.n_problems, out.n_problems_seen) == (2, 2, 2)


def test_correct_keeps_gold_matches_and_dedups_whitespace_variants(make_run, tmp_path):
    run = make_run()
    deduped = export_sft(run, tmp_path / "a", which="correct")
    kept = export_sft(run, tmp_path / "b", which="correct", dedup=False)
    capped = export_sft(run, tmp_path / "c", which="correct", dedup=False, max_per_problem=1)
    def read(o):
        return [assistant(json.loads(x)) for x in (o.output / SFT_JSONL).read_text().splitlines()]

    assert read(deduped) == [RIGHT_0, RIGHT_1]
    assert read(kept) == [RIGHT_0, RIGHT_0, RIGHT_1]  # the copy with a trailing space, stripped
    assert read(capped) == [RIGHT_0, RIGHT_1]


def test_failed_and_unselected_problems_are_left_out(make_run, tmp_path):
    rows = results()
    rows[1] = ProblemResult(problem=rows[1].problem, strategy="best_of_n", error="GenerationError: boom")
    rows.append(ProblemResult(problem=PROBLEMS[0].__class__("p2", "q", "1"), strategy="best_of_n"))
    out = export_sft(make_run(rows), tmp_path / "sft")
    assert (out.n_rows, out.n_problems, out.n_problems_seen) == (1, 1, 2)


def test_dataset_on_disk_is_what_trl_sft_reads(make_run, tmp_path, smol_tokenizer):
    from datasets import load_from_disk
    from trl.data_utils import apply_chat_template, is_conversational

    out = export_sft(make_run(), tmp_path / "sft", which="correct")
    ds = load_from_disk(str(out.output / SFT_DATASET))
    assert len(ds) == 2 and ds.column_names == ["id", "messages"]
    assert ds[0]["messages"][2] == {"role": "assistant", "content": RIGHT_0}
    assert is_conversational(ds[0])
    rendered = apply_chat_template({"messages": ds[0]["messages"]}, smol_tokenizer)["text"]
    assert PROBLEMS[0].question in rendered and RIGHT_0 in rendered


def test_bad_arguments_fail_at_the_edge(make_run, tmp_path):
    with pytest.raises(ConfigError, match="--which='best'"):
        export_sft(make_run(), which="best")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--max-per-problem=0"):
        export_sft(make_run(name="r2"), max_per_problem=0)


def test_cli_writes_into_the_run_dir_by_default(make_run):
    run = make_run()
    res = CliRunner().invoke(app, ["learn", "export-sft", str(run), "--which", "correct", "--max-per-problem", "1"])
    assert res.exit_code == 0, res.output
    assert "2 solutions from 2/2 problems" in res.output
    assert (run / "sft" / SFT_JSONL).is_file() and (run / "sft" / SFT_DATASET).is_dir()
    bad = CliRunner().invoke(app, ["learn", "export-sft", str(run / "missing")])
    assert bad.exit_code == 2 and "run directory not found" in bad.output


@pytest.mark.slow  # ~10 s: TRL's SFTTrainer import and one step
def test_sft_trainer_takes_the_dataset_as_is(make_run, tmp_path, smol_tokenizer):
    import torch
    from datasets import load_from_disk
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    out = export_sft(make_run(), tmp_path / "sft", which="correct")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(smol_tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    args = SFTConfig(output_dir=str(tmp_path / "ckpt"), max_steps=1, per_device_train_batch_size=2, report_to="none",
                     save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=load_from_disk(str(out.output / SFT_DATASET)),
                         processing_class=smol_tokenizer)
    first = trainer.train_dataset[0]
    assert smol_tokenizer.decode(first["input_ids"]).count(RIGHT_0) == 1
    trainer.train()
