"""The shape of a completions.jsonl row and a trees.jsonl row, checked when a run folder is read.

A row can be valid JSON and still not be a row (a hand edit, a tool that rewrote the file, a disk
that flipped bytes inside a string): a string where an object is, a null budget, a `selected` index
past the candidates. Checked here, the reader skips it with its line number and resume searches the
problem again; unchecked, evaluate and tree died far away in an AttributeError or IndexError.
"""

from __future__ import annotations

from typing import Any

from ttscale.types import Budget

_NUMBER = (int, float)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, _NUMBER) and not isinstance(v, bool)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def _problem_error(p: Any) -> str | None:
    if not isinstance(p, dict):
        return f"'problem' is {type(p).__name__}, not an object"
    for key in ("id", "question", "answer"):
        if not isinstance(p.get(key), str):
            return f"'problem.{key}' is {p.get(key)!r}, not a string"
    if p.get("level") is not None and not _int(p["level"]):
        return f"'problem.level' is {p['level']!r}, not an integer"
    if p.get("subject") is not None and not isinstance(p["subject"], str):
        return f"'problem.subject' is {p['subject']!r}, not a string"
    return None


def _completion_error(c: Any, where: str) -> str | None:
    if not isinstance(c, dict):
        return f"'{where}' is {type(c).__name__}, not an object"
    if not isinstance(c.get("text"), str):
        return f"'{where}.text' is not a string"
    if "steps" in c and not _str_list(c["steps"]):
        return f"'{where}.steps' is not a list of strings"
    if c.get("answer") is not None and not isinstance(c["answer"], str):
        return f"'{where}.answer' is {c['answer']!r}, not a string or null"
    scores = c.get("step_scores")
    if scores is not None and not (isinstance(scores, list) and all(_num(s) for s in scores)):
        return f"'{where}.step_scores' is not a list of numbers"
    for key in ("n_tokens", "thinking_tokens"):
        if key in c and not _int(c[key]):
            return f"'{where}.{key}' is {c[key]!r}, not an integer"
    if c.get("confidence") is not None and not isinstance(c["confidence"], dict):
        return f"'{where}.confidence' is not an object"
    return None


def result_row_error(row: dict[str, Any]) -> str | None:
    """Why `row` is not a completions.jsonl row (naming the field and its value), or None."""
    problem_error = _problem_error(row.get("problem"))
    if problem_error:
        return problem_error
    if "id" in row and row["id"] != row["problem"]["id"]:
        return f"'id' {row['id']!r} is not its problem's id {row['problem']['id']!r}"
    if not isinstance(row.get("strategy"), str):
        return f"'strategy' is {row.get('strategy')!r}, not a string"
    if row.get("error") is not None and not isinstance(row["error"], str):
        return f"'error' is {row['error']!r}, not a string or null"
    completions = row.get("completions", [])
    if not isinstance(completions, list):
        return f"'completions' is {type(completions).__name__}, not a list"
    for i, c in enumerate(completions):
        if error := _completion_error(c, f"completions[{i}]"):
            return error
    selected = row.get("selected")
    if selected is not None and not (_int(selected) and 0 <= selected < len(completions)):
        return f"'selected' is {selected!r}, not an index into its {len(completions)} completions"
    budget = row.get("budget", {})
    if not isinstance(budget, dict):
        return f"'budget' is {budget!r}, not an object"
    for key in Budget.__dataclass_fields__:
        if key in budget and not _num(budget[key]):
            return f"'budget.{key}' is {budget[key]!r}, not a number"
    return None


def tree_row_error(row: dict[str, Any]) -> str | None:
    """Why `row` is not a trees.jsonl row, or None."""
    if not isinstance(row.get("id"), str):
        return f"'id' is {row.get('id')!r}, not a string"
    nodes = row.get("nodes")
    if not isinstance(nodes, list):
        return f"'nodes' is {type(nodes).__name__}, not a list"
    for i, n in enumerate(nodes):
        if not isinstance(n, dict):
            return f"'nodes[{i}]' is {type(n).__name__}, not an object"
        checks = {"id": _int(n.get("id")), "parent": n.get("parent") is None or _int(n.get("parent")),
                  "step": isinstance(n.get("step"), str), "score": n.get("score") is None or _num(n.get("score")),
                  "n_tokens": _int(n.get("n_tokens")), "completed": isinstance(n.get("completed"), bool)}
        for key, ok in checks.items():
            if not ok:
                return f"'nodes[{i}].{key}' is {n.get(key)!r}"
        if set(n) - set(checks):
            return f"'nodes[{i}]' has unknown keys {sorted(set(n) - set(checks))}"
    return None
