import json
import re
from pathlib import Path

import pytest

from ttscale.config import DatasetConfig
from ttscale.data.datasets import load_problems
from ttscale.data.synthetic import arithmetic_problem, arithmetic_problems
from ttscale.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_math500_by_path():
    problems = load_problems(DatasetConfig(source=str(SHARED / "math500.jsonl"), levels=[5], limit=3))
    assert len(problems) == 3 and all(p.level == 5 for p in problems)
    assert problems[0].id.startswith("test/") and problems[0].answer


def test_gsm8k_gold_is_number_after_hashes():
    problems = load_problems(DatasetConfig(source=str(SHARED / "gsm8k_test.jsonl"), limit=5))
    assert [p.answer for p in problems][:2] == ["18", "3"]
    assert all(re.fullmatch(r"-?[\d.]+", p.answer) for p in problems)


def test_malformed_line_names_file_and_line(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2", "answer": \n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON"):
        load_problems(DatasetConfig(source=str(f)))


def test_missing_answer_field(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps({"problem": "1+1", "answer": "2"}) + "\n" + json.dumps({"problem": "x"}) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2: no answer field"):
        load_problems(DatasetConfig(source=str(f)))
    with pytest.raises(DataError, match="no field 'gold'"):
        load_problems(DatasetConfig(source=str(f), answer_field="gold"))


def test_missing_file_and_empty_filter(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_problems(DatasetConfig(source=str(tmp_path / "nope.jsonl")))
    with pytest.raises(DataError, match="no problems after filtering"):
        load_problems(DatasetConfig(source=str(SHARED / "math500.jsonl"), subjects=["Astrology"]))


def test_hub_loader_reads_a_saved_dataset_dir(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list(
        [{"question": "What is 2+3?", "final": "5", "uid": "a"}, {"question": "What is 1+1?", "final": "2", "uid": "b"}]
    )
    ds.save_to_disk(str(tmp_path / "hubdir"))
    cfg = DatasetConfig(source=str(tmp_path / "hubdir"), answer_field="final", id_field="uid")
    problems = load_problems(cfg)
    assert [(p.id, p.answer) for p in problems] == [("a", "5"), ("b", "2")]


def test_synthetic_answers_follow_the_worked_solution():
    import random

    rng = random.Random(3)
    for level in range(1, 6):
        for i in range(20):
            problem, solution = arithmetic_problem(rng, level, i)
            equations = re.findall(r"(\d+) ([+\-*]) (\d+) = (\d+)", solution)
            assert len(equations) == {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}[level]
            for a, op, b, c in equations:
                assert eval(f"{a}{op}{b}") == int(c)
            assert equations[-1][3] == problem.answer and int(problem.answer) >= 0


def test_synthetic_is_seeded_and_shuffle_limit_apply():
    a = arithmetic_problems(10, seed=1)
    assert a == arithmetic_problems(10, seed=1) and a != arithmetic_problems(10, seed=2)
    cfg = DatasetConfig(source="synthetic:arithmetic", synthetic_size=50, levels=[2], shuffle=True, limit=4)
    problems = load_problems(cfg)
    assert len(problems) == 4 and {p.level for p in problems} == {2}
    with pytest.raises(DataError, match="unknown synthetic dataset"):
        load_problems(DatasetConfig(source="synthetic:algebra"))
