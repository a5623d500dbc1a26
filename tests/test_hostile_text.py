"""Text Python can read but not write back or recurse through: lone surrogates, deep nesting, U+2028,
bytes cut mid-character, byte-order marks, and dataset files in the formats people actually have."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttscale.config import DatasetConfig
from ttscale.data.datasets import load_problems
from ttscale.data.results import COMPLETIONS, RunDir, read_results
from ttscale.errors import DataError
from ttscale.grading.cli import grade_main
from ttscale.runner import run
from ttscale.types import Completion, Problem, ProblemResult

SURROGATE = '"\\ud800"'  # a lone surrogate, as JSON escapes it: json.loads accepts it, UTF-8 cannot hold it
DEEP = "[" * 100_000 + "]" * 100_000


def _pairs(tmp_path: Path, data: bytes, capsys) -> tuple[int, list[dict], str]:
    f = tmp_path / "pairs.jsonl"
    f.write_bytes(data)
    import sys

    code = grade_main(None, None, str(f), sys.stdout, sys.stderr)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.split("\n") if line], err


# --- lone surrogates and deep nesting: refused at load with file:line -----------------------------


@pytest.mark.parametrize("value, reason", [
    (SURROGATE, "surrogate"),
    ('{"x": ' + SURROGATE + "}", "surrogate"),  # anywhere in the row, not only the question
    (DEEP, "nested too deeply"),
], ids=["surrogate_question", "surrogate_elsewhere", "deep_nesting"])
def test_dataset_row_that_cannot_be_written_back_is_refused_with_file_and_line(tmp_path, value, reason):
    f = tmp_path / "d.jsonl"
    f.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": ' + value + ', "answer": "3"}\n')
    with pytest.raises(DataError, match=rf"d\.jsonl:2: .*{reason}"):
        load_problems(DatasetConfig(source=str(f)))


@pytest.mark.parametrize("bad", [SURROGATE.encode(), DEEP.encode(), b'"a\xed\xa0\x80b"'],
                         ids=["escaped_surrogate", "deep_nesting", "surrogate_as_raw_bytes"])
def test_pairs_file_bad_line_is_one_error_row_and_the_rest_is_graded(tmp_path, capsys, bad):
    data = b'{"gold": "2", "pred": "2"}\n{"gold": ' + bad + b', "pred": "1"}\n{"gold": "3", "pred": "4"}\n'
    code, rows, err = _pairs(tmp_path, data, capsys)
    assert code == 0 and len(rows) == 3
    assert rows[0]["equal"] is True and "error" in rows[1] and rows[2]["equal"] is False
    assert "3 pairs, 1 equal, 1 errors" in err


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])  # JSON allows these unescaped
def test_pairs_line_holding_a_unicode_line_separator_stays_one_pair(tmp_path, capsys, separator):
    data = '{"gold": "2", "pred": "2", "note": "a' + separator + 'b"}\n'
    code, rows, err = _pairs(tmp_path, data.encode("utf-8"), capsys)
    assert code == 0 and len(rows) == 1 and rows[0]["equal"] is True and rows[0]["note"] == f"a{separator}b"


def test_a_finished_row_holding_a_surrogate_is_written_escaped_not_lost(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.prepare({"output": {"dir": str(tmp_path / "run")}})
    problem = Problem(id="p", question="q", answer="1")
    rd.append(ProblemResult(problem, "best_of_n", (Completion(text="x\ud800y", steps=("x\ud800y",), answer="1"),), 0))
    rd.release()
    (row,) = read_results(rd.path)
    assert row.completions[0].text == "x\ud800y"


# --- bytes cut mid-character or not UTF-8: skipped and reported, like an ASCII cut -----------------


def _finished_run(fake_cfg) -> Path:
    cfg = fake_cfg("dataset.limit=3")
    run(cfg, progress=False)
    return Path(cfg.output.dir)


def _damage(run_dir: Path, where: str) -> None:
    path = run_dir / COMPLETIONS
    lines = path.read_bytes().split(b"\n")[:-1]
    if where == "cut_last_line_mid_character":
        row = json.loads(lines[-1])
        row["problem"]["question"] = "Ünïcödé " * 8
        text = json.dumps(row, ensure_ascii=False).encode("utf-8")
        cut = text.index("ö".encode()) + 1  # inside the two bytes of ö
        path.write_bytes(b"\n".join(lines[:-1]) + b"\n" + text[:cut])
    else:  # a middle line with bytes that are not UTF-8
        path.write_bytes(b"\n".join(lines[:1] + [lines[1].replace(b'"text"', b'"te\xff\xfext"')] + lines[2:]) + b"\n")


READERS = {
    "evaluate": lambda d, tmp: __import__("ttscale.eval.evaluate", fromlist=["x"]).load_run(d).results,
    "export_sft": lambda d, tmp: __import__("ttscale.learn.common", fromlist=["x"]).read_run(d)[1],
    "resume": lambda d, tmp: RunDir(d).done([])[0],
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("damage", ["cut_last_line_mid_character", "bad_bytes_in_a_middle_line"])
def test_bad_bytes_in_a_run_file_skip_that_line_and_keep_the_rest(fake_cfg, tmp_path, caplog, reader, damage):
    run_dir = _finished_run(fake_cfg)
    _damage(run_dir, damage)
    READERS[reader](run_dir, tmp_path)
    results = read_results(run_dir)
    assert len(results) == 2
    assert any(f"{COMPLETIONS}:" in r.message for r in caplog.records)


def test_resume_after_bad_bytes_searches_only_that_problem_again(fake_cfg):
    cfg = fake_cfg("dataset.limit=3")
    run(cfg, progress=False)
    _damage(Path(cfg.output.dir), "bad_bytes_in_a_middle_line")
    outcome = run(cfg, progress=False)
    assert outcome.n_new == 1 and outcome.n_skipped == 2


# --- dataset files people have --------------------------------------------------------------------

ROWS = [{"problem": "1+1", "answer": "2"}, {"problem": "2+3", "answer": "5"}]


def _write(path: Path, kind: str) -> None:
    if kind == "bom_jsonl":
        path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in ROWS).encode())
    elif kind in ("upper_JSONL", "ndjson"):
        path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif kind == "json_array":
        path.write_text(json.dumps(ROWS))
    elif kind == "csv":
        path.write_text("problem,answer\n1+1,2\n2+3,5\n")


@pytest.mark.parametrize("kind, name", [("bom_jsonl", "d.jsonl"), ("upper_JSONL", "d.JSONL"), ("ndjson", "d.ndjson"),
                                        ("json_array", "d.json"), ("csv", "d.csv")])
def test_dataset_files_people_have_are_loaded(tmp_path, kind, name):
    _write(tmp_path / name, kind)
    problems = load_problems(DatasetConfig(source=str(tmp_path / name)))
    assert [(p.question, p.answer) for p in problems] == [("1+1", "2"), ("2+3", "5")]


def test_a_file_in_no_accepted_format_names_the_formats(tmp_path):
    (tmp_path / "d.txt").write_text("1+1 = 2\n")
    with pytest.raises(DataError, match=r"d\.txt is in no format read here; accepted: a \.jsonl"):
        load_problems(DatasetConfig(source=str(tmp_path / "d.txt")))


@pytest.mark.parametrize("bad, reason", [(b"{bad\n", "not valid JSON"), (b'{"problem": "\xff", "answer": "1"}\n', "not UTF-8")],
                         ids=["malformed_line", "bad_byte"])
def test_dataset_folder_with_a_bad_line_names_the_file_and_line(tmp_path, bad, reason):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "part.jsonl").write_bytes(b'{"problem": "1+1", "answer": "2"}\n' + bad)
    with pytest.raises(DataError, match=rf"part\.jsonl:2: {reason}"):
        load_problems(DatasetConfig(source=str(folder), split="train"))
