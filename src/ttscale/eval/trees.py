"""Search trees as indented text (`ttscale tree`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ttscale.types import TreeNode


def format_tree(nodes: Sequence[TreeNode], width: int = 70) -> str:
    children: dict[int | None, list[TreeNode]] = defaultdict(list)
    for n in nodes:
        children[n.parent].append(n)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for n in children[parent]:
            text = " ".join(n.step.split())
            text = text if len(text) <= width else text[: width - 1] + "…"
            score = "  -  " if n.score is None else f"{n.score:.3f}"
            mark = " [done]" if n.completed else ""
            lines.append(f"{'  ' * depth}#{n.id} [{score}] {text}{mark}")
            walk(n.id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)
