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
    # Ids come from a file: a node listed twice, or its own ancestor, must not loop forever, and a
    # chain of any length must not overflow the stack, so the walk keeps its own stack
    shown: set[int] = set()
    stack = [(n, 0) for n in reversed(children[None])]
    while stack:
        n, depth = stack.pop()
        if n.id in shown:
            continue
        shown.add(n.id)
        text = " ".join(n.step.split())
        text = text if len(text) <= width else text[: width - 1] + "…"
        score = "  -  " if n.score is None else f"{n.score:.3f}"
        mark = " [done]" if n.completed else ""
        lines.append(f"{'  ' * depth}#{n.id} [{score}] {text}{mark}")
        stack.extend((c, depth + 1) for c in reversed(children[n.id]))
    return "\n".join(lines)
