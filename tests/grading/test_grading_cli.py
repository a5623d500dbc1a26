from __future__ import annotations

import io
import json
from pathlib import Path

from ttscale.grading.cli import grade_main


def _run(**kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = {"gold": None, "pred": None, "pairs": None, "timeout_total": None, **kwargs}
    code = grade_main(args["gold"], args["pred"], args["pairs"], out, err, args["timeout_total"])
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


def test_timeout_total_bounds_the_file_and_reports_undecided_pairs(tmp_path: Path) -> None:
    """N pathological pairs cost ~5N/2 s; --timeout-total caps the file, the rest are errors."""
    import time

    hard = [{"gold": f"({k}^{{{k}^{{{k}}}}})!", "pred": str(k)} for k in range(11, 17)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [{"gold": "1/2", "pred": "0.5"}, *hard]))
    started = time.monotonic()
    code, out, err = _run(pairs=str(path), timeout_total=2.0)
    elapsed = time.monotonic() - started
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and elapsed < 4.0, elapsed
    assert rows[0]["equal"] is True
    assert all("timed out: not decided within --timeout-total 2s" in r["error"] for r in rows[1:]), rows
    assert err == "7 pairs, 1 equal, 6 errors\n"


def test_timeout_total_must_be_positive() -> None:
    code, _, err = _run(gold="1", pred="1", timeout_total=float("inf"))
    assert code == 2 and "--timeout-total inf is invalid" in err
