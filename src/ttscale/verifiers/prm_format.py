"""The stepwise-supervision layout a trained PRM reads, shared by the trainer and the `trained_prm` verifier.

It is TRL's `PRMTrainer.tokenize_row` (trl 0.12 - 0.29): BOS (when the tokenizer has
one) + the prompt's tokens, then each step tokenized on its own followed by the
separator's tokens; a step's label sits on the last separator token. The verifier must
score at exactly those positions, so the layout is written next to the weights
(ttscale_prm.json) and read back from there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from ttscale.errors import ModelLoadError

LAYOUT_FILE = "ttscale_prm.json"
IGNORE = -100  # the label torch's cross-entropy skips


@dataclass(frozen=True)
class PRMLayout:
    """How a (prompt, steps) item becomes tokens, recorded beside the weights."""

    step_separator: str = "\n"
    add_bos: bool = True
    positive_label: int = 1
    format: str = "trl-stepwise"
    trainer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, directory: str | Path) -> None:
        (Path(directory) / LAYOUT_FILE).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> PRMLayout:
        path = Path(directory) / LAYOUT_FILE
        if not path.is_file():
            raise ModelLoadError(
                f"{directory} has no {LAYOUT_FILE}; verifier 'trained_prm' loads models saved by `ttscale learn train-prm`"
            )
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def encode_steps(
    tokenizer: Any, prompt: str, steps: Sequence[str], layout: PRMLayout
) -> tuple[list[int], list[int]]:
    """(input ids, the position of each step's label): TRL's tokenize_row without truncation."""
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if layout.add_bos and tokenizer.bos_token_id is not None:
        prompt_ids = [tokenizer.bos_token_id] + prompt_ids
    separator = list(tokenizer.encode(layout.step_separator, add_special_tokens=False))
    pieces = [list(tokenizer(s, add_special_tokens=False)["input_ids"]) + separator for s in steps]
    ids = prompt_ids + list(chain(*pieces))
    positions, end = [], len(prompt_ids)
    for piece in pieces:
        end += len(piece)
        positions.append(end - 1)
    return ids, positions


def tokenize_row(
    row: dict[str, Any], tokenizer: Any, layout: PRMLayout, max_length: int | None
) -> dict[str, list[Any]]:
    """One dataset row -> input_ids and per-token labels (IGNORE off the label positions).

    Hard labels become class ids 0/1 as in TRL; soft labels (Math-Shepherd's fraction of
    rollouts that reach the gold answer) stay floats, the target P(correct); a None label leaves
    its step out of the loss (a step no source judged, still read as context by the later ones).
    """
    ids, positions = encode_steps(tokenizer, row["prompt"], row["completions"], layout)
    labels: list[float] = [float(IGNORE)] * len(ids)
    for pos, label in zip(positions, row["labels"]):
        labels[pos] = float(IGNORE if label is None else label)
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels}
