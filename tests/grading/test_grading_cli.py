from __future__ import annotations

import io
import json
from pathlib import Path

from ttscale.grading.cli import grade_main


def _run(**kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = {"gold": None, "pred": None, "pairs": None, **kwargs}
    code = grade_main(args["gold"], args["pred"], args["pairs"], out, err)
    return code, out.getvalue(), err.getvalue()


def test_single_pair_true_and_false() -> None:
    assert _run(gold="\\frac12", pred="0.5") == (0, "true\n", "")
    assert _run(gold="\\frac12", pred="0.6")[:2] == (1, "false\n")


def test_pairs_file(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"gold": "1,000", "pred": "1000", "id": 7}),
                "{not json",
                json.dumps({"gold": "2"}),
                "",
                json.dumps({"gold": "\\sqrt{8}", "pred": "2\\sqrt2"}),
                json.dumps({"gold": "3", "pred": "4"}),
            ]
        )
    )
    code, out, err = _run(pairs=str(path))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert rows[0] == {"gold": "1,000", "pred": "1000", "id": 7, "equal": True}
    assert "not valid JSON" in rows[1]["error"]
    assert rows[2]["gold"] == "2" and "pred" in rows[2]["error"]
    assert rows[3]["equal"] is True and rows[4]["equal"] is False
    assert err == "5 pairs, 2 equal, 2 errors\n"


def test_unreadable_file(tmp_path: Path) -> None:
    code, out, err = _run(pairs=str(tmp_path / "missing.jsonl"))
    assert code == 2 and out == "" and "cannot read pairs file" in err


def test_usage_errors() -> None:
    assert _run(gold="1")[0] == 2
    assert _run(gold="1", pred="1", pairs="x.jsonl")[0] == 2
