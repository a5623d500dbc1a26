"""Hand-built run directories and a tiny randomly initialised token-classification model."""

from __future__ import annotations

import pytest

from ttscale.data.results import RunDir
from ttscale.recipe import load_config
from ttscale.search.steps import split_steps
from ttscale.types import Completion, Problem, ProblemResult

DELIM = "\n"

PROBLEMS = [
    Problem(id="p0", question="Tom has 5 apples. He buys 4 more apples. How many apples does Tom have now?", answer="9"),
    Problem(id="p1", question="Anna has 12 pens. She gives 5 pens to a friend. How many pens does Anna have now?",
            answer="7"),
]


def completion(text: str, answer: str | None, finished: bool = True) -> Completion:
    return Completion(text=text, steps=split_steps(text, DELIM), answer=answer, finished=finished,
                      finish_reason="eos" if finished else "length")


RIGHT_0 = "Step 1: Tom buys 4 more apples, so 5 + 4 = 9.\nAnswer: \\boxed{9}"
WRONG_0 = "Step 1: Tom buys 4 more apples, so 5 + 4 = WRONG 10.\nAnswer: \\boxed{10}"
RIGHT_1 = "Step 1: Anna gives away 5 pens, so 12 - 5 = 7.\nAnswer: \\boxed{7}"
WRONG_1 = "Step 1: Anna gives away 5 pens, so 12 + 5 = WRONG 17.\nStep 2: She has 17 pens.\nAnswer: \\boxed{17}"


def results() -> list[ProblemResult]:
    """p0: right (x2, one with extra whitespace), wrong, selected = right; p1: wrong selected, right present."""
    return [
        ProblemResult(
            problem=PROBLEMS[0], strategy="best_of_n",
            completions=(completion(RIGHT_0, "9"), completion(WRONG_0, "10"), completion(RIGHT_0 + " ", "9")),
            selected=0,
        ),
        ProblemResult(
            problem=PROBLEMS[1], strategy="best_of_n",
            completions=(completion(WRONG_1, "17"), completion(RIGHT_1, "7"), completion("Step 1: I am not sure", None, False)),
            selected=0,
        ),
    ]


@pytest.fixture
def make_run(tmp_path):
    """A run directory (fake backend, completion prompts, '\\n' steps) holding the given results."""

    def make(rows: list[ProblemResult] | None = None, name: str = "run", *overrides: str):
        cfg = load_config(None, [
            "model.backend=fake", "prompt.mode=completion", "search.step_delimiter=\\n",
            "sampling.max_new_tokens=64", f"output.dir={tmp_path / name}", *overrides,
        ])
        run_dir = RunDir(cfg.output.dir)
        run_dir.prepare(cfg.to_dict())
        for r in results() if rows is None else rows:
            run_dir.append(r)
        return run_dir.path

    return make


@pytest.fixture(scope="session")
def smol_tokenizer():
    from transformers import AutoTokenizer

    from ttscale.models.loading import resolve_source

    return AutoTokenizer.from_pretrained(resolve_source("embedded:smollm2", None)[0])


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, smol_tokenizer):
    """A directory with a tiny random LlamaForTokenClassification (2 labels) and the SmolLM2 tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForTokenClassification

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(smol_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, num_labels=2,
    )
    path = tmp_path_factory.mktemp("tiny_base")
    LlamaForTokenClassification(config).save_pretrained(path)
    smol_tokenizer.save_pretrained(path)
    return str(path)
